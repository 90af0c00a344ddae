import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import type { TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { databaseOnDriver, type DriverDatabase } from '../helpers/drivers.js';
import { parseConfig } from '../../lib/config.js';
import { accountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';
import { queryRows, type DbHandle } from '../../db/client.js';
import { DAY_MS, dueOwnerCompany, dueRequest, handBuiltContext, insertCompany, insertUser, seedTenant } from './deletions-seed.js';

const NOW = new Date('2026-03-10T02:00:00Z');
const INVOCATIONS = 5;

for (const driver of ['pg', 'neon'] as const) {
  describePg(`account deletion under ${INVOCATIONS} simultaneous invocations (${driver} driver)`, () => {
    let t: TestDatabase;
    let handle: DbHandle;
    let onDriver: DriverDatabase;
    let sink: Awaited<ReturnType<typeof startSmtpSink>>;

    beforeAll(async () => {
      onDriver = await databaseOnDriver(driver, `delconc${driver}`, 20);
      ({ t, handle } = onDriver);
      sink = await startSmtpSink();
    });
    afterAll(async () => {
      await sink?.close();
      await onDriver?.close();
    });

    it('each account is deleted once, with one log row and one email; each reminder goes out once', async () => {
      const db = t.handle.db;
      // a whole company, a single user in a company that lives on, a super_admin, and the last two
      // users of one company asking together (one of them must end up deleting the company)
      const whole = await seedTenant(db, 'W', NOW, dueOwnerCompany('W', NOW));
      const living = await insertCompany(db, 'Vivante');
      await insertUser(db, { companyId: living, role: 'owner' });
      const single = await insertUser(db, { companyId: living, email: 'single@example.fr', ...dueRequest(NOW) });
      const admin = await insertUser(db, { companyId: null, role: 'super_admin', email: 'admin@example.fr', ...dueRequest(NOW) });
      const pair = await insertCompany(db, 'Duo');
      const p1 = await insertUser(db, { companyId: pair, role: 'owner', email: 'p1@example.fr', ...dueRequest(NOW) });
      const p2 = await insertUser(db, { companyId: pair, email: 'p2@example.fr', ...dueRequest(NOW) });
      const reminded = await insertUser(db, {
        companyId: living,
        email: 'bientot@example.fr',
        deletionRequestedAt: new Date(NOW.getTime() - 25 * DAY_MS),
        deletionScheduledAt: new Date(NOW.getTime() + 5 * DAY_MS),
      });
      const wholeOwner = whole.ids.get('users')![0];
      const requesters = [wholeOwner, single, admin, p1, p2];

      const config = parseConfig({ NODE_ENV: 'test', SMTP_URL: sink.url });
      const contexts = Array.from({ length: INVOCATIONS }, () => handBuiltContext(handle.db, config, NOW));
      const results = await Promise.all(contexts.map((ctx) => accountDeletionsJob.run(ctx)));
      for (const ctx of contexts) ctx.mail.closeAll();

      const sum = (k: string) => results.reduce((n, r) => n + Number(r.stats[k]), 0);
      expect(results.flatMap((r) => r.errors)).toEqual([]);
      expect(sum('deletedUsers')).toBe(requesters.length);
      expect(sum('deletedCompanies')).toBe(2); // W, and Duo by whichever of p1/p2 went last
      expect(sum('failures')).toBe(0);
      expect(sum('remindersSent')).toBe(1);

      const logs = await queryRows<{ user_id: number; scope: string }>(
        db,
        sql`select user_id, scope from account_deletion_log order by user_id`,
      );
      expect(logs.map((l) => l.user_id)).toEqual([...requesters].sort((a, b) => a - b));
      expect(
        logs
          .filter((l) => l.user_id === p1 || l.user_id === p2)
          .map((l) => l.scope)
          .sort(),
      ).toEqual(['company', 'user']);
      const left = await queryRows(db, sql`select id from users where id = any(${`{${requesters.join(',')}}`}::int[])`);
      expect(left).toEqual([]);
      expect(await queryRows(db, sql`select id from companies where id in (${whole.companyId}, ${pair})`)).toEqual([]);

      const to = (addr: string) => sink.received.filter((m) => m.to.includes(addr));
      for (const addr of ['single@example.fr', 'admin@example.fr', 'p1@example.fr', 'p2@example.fr', 'bientot@example.fr']) {
        expect(to(addr), addr).toHaveLength(1);
      }
      expect(sink.received).toHaveLength(requesters.length + 1);
      const [r] = await queryRows<{ sent: string }>(db, sql`select deletion_reminder_sent_at as sent from users where id = ${reminded}`);
      expect(new Date(r.sent)).toEqual(NOW);
    });
  });
}
