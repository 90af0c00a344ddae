import { afterAll, beforeAll, expect, it } from 'vitest';
import { getTableName, sql } from 'drizzle-orm';
import type { TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { databaseOnDriver, type DriverDatabase } from '../helpers/drivers.js';
import { runJob } from '../../lib/cron/run.js';
import { accountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';
import { DELETION_ORDER, GLOBAL_TABLES } from '../../db/schema/deletion-order.js';
import { queryRows, type DbHandle } from '../../db/client.js';
import { emailSha256 } from '../../lib/jobs/account-deletions/plan.js';
import {
  checksumExcept,
  dueOwnerCompany,
  livingCompany,
  remainingRows,
  schemaTables,
  seedTenant,
  tenantTables,
  type SeededIds,
} from './deletions-seed.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';

const NOW = new Date('2026-03-10T02:00:00Z');

// SPEC §5.3.6: every table of the drizzle schema, a deleted tenant and an untouched one, over both drivers.
for (const driver of ['pg', 'neon'] as const) {
  describePg(`account deletion covers every table of the schema (${driver} driver)`, () => {
    let t: TestDatabase;
    let handle: DbHandle;
    let onDriver: DriverDatabase;
    let sink: Awaited<ReturnType<typeof startSmtpSink>>;

    beforeAll(async () => {
      onDriver = await databaseOnDriver(driver, `delcov${driver}`);
      ({ t, handle } = onDriver);
      sink = await startSmtpSink();
    });
    afterAll(async () => {
      await sink?.close();
      await onDriver?.close();
    });

    it("the deletion order lists exactly the schema's tenant tables (global tables exempt), naming any that is missing", () => {
      const order = new Set(DELETION_ORDER.map((s) => getTableName(s.table)));
      const scoped = new Set(schemaTables.map(getTableName).filter((n) => !GLOBAL_TABLES.includes(n)));
      const missing = [...scoped].filter((n) => !order.has(n));
      expect(
        missing,
        `table(s) ${missing.map((m) => `"${m}"`).join(', ')} are in the schema but not in DELETION_ORDER: add them to db/schema/deletion-order.ts (children before parents) or to GLOBAL_TABLES if they hold no company or user data`,
      ).toEqual([]);
      expect([...order].sort()).toEqual([...scoped].sort());
    });

    it("deletes every row of the last user's company in every table, keeps invoices detached, and changes no row of anyone else", async () => {
      const db = t.handle.db; // seeding and checks over pg; the job runs over the driver under test
      const a = await seedTenant(db, 'A', NOW, dueOwnerCompany('A', NOW));
      const b = await seedTenant(db, 'B', NOW, livingCompany('B'));
      // every tenant table really has rows of both companies: otherwise the test proves nothing
      for (const table of tenantTables()) {
        const name = getTableName(table);
        expect(a.ids.get(name)?.length, `no seeded row of A in ${name}`).toBeGreaterThan(0);
        expect(b.ids.get(name)?.length, `no seeded row of B in ${name}`).toBeGreaterThan(0);
      }
      const before = await checksumExcept(db, a.ids);
      const requester = (
        await queryRows<{ id: number; email: string }>(db, sql`select id, email from users where id = ${a.ids.get('users')![0]}`)
      )[0];

      const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24), SMTP_URL: sink.url }, handle);
      const res = await runJob(accountDeletionsJob, 'http', { dryRun: false, scope: {}, nowOverride: NOW }, rt);
      expect(httpStatusOf(res)).toBe(200);
      expect(res.body.errors).toEqual([]);
      expect(res.body.stats).toMatchObject({
        deletedUsers: 1,
        deletedCompanies: 1,
        retainedInvoices: 1,
        failures: 0,
        confirmationsSent: 1,
      });

      // the issued invoice is kept, with its lines and payments; the draft goes
      const [issued, draft] = a.ids.get('invoices')!;
      const [issuedLine] = a.ids.get('invoice_lines')!;
      const [issuedPayment] = a.ids.get('invoice_payments')!;
      const allowed: SeededIds = new Map([
        ['invoices', [issued]],
        ['invoice_lines', [issuedLine]],
        ['invoice_payments', [issuedPayment]],
      ]);
      const left = await remainingRows(db, a.ids);
      const unexpected = Object.fromEntries(
        Object.entries(left).filter(([name, ids]) => ids.some((id) => !(allowed.get(name) ?? []).includes(id))),
      );
      expect(unexpected, 'rows of the deleted company left behind').toEqual({});
      expect(left.invoices).toEqual([issued]);
      expect(left.invoices).not.toContain(draft);

      const [kept] = await queryRows<Record<string, unknown>>(
        db,
        sql`
        select company_id, client_id, notes, number, client_name, seller_name, total_ttc::text as total,
          retained_until = issue_date + interval '10 years' as ten_years
        from invoices where id = ${issued}`,
      );
      expect(kept).toEqual({
        company_id: null,
        client_id: null,
        notes: null,
        number: 'FAC-A-1',
        client_name: 'Client SARL',
        seller_name: 'Entreprise A',
        total: '1200.00',
        ten_years: true,
      });

      // no row of B (or of anything else) changed
      expect(await checksumExcept(db, a.ids)).toEqual(before);

      const logs = await queryRows<Record<string, unknown>>(
        db,
        sql`select user_id, company_id, email_sha256, scope, counts from account_deletion_log`,
      );
      expect(logs).toHaveLength(1);
      expect(logs[0]).toMatchObject({
        user_id: requester.id,
        company_id: a.companyId,
        email_sha256: emailSha256(requester.email),
        scope: 'company',
      });
      expect(JSON.stringify(logs[0])).not.toContain(requester.email);
      expect((logs[0].counts as { deleted: Record<string, number> }).deleted).toMatchObject({
        users: 2,
        companies: 1,
        invoices: 1,
        inbox_integrations: 1,
      });

      expect(sink.received.filter((m) => m.to.includes(requester.email))).toHaveLength(1);
    });
  });
}
