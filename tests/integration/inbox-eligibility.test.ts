/**
 * One mailbox-eligibility predicate (lib/jobs/inbox-sync/eligibility.ts), on a real PostgreSQL and
 * a real Dovecot: a mailbox in `needs_reauth`, a paused one and one of an inactive company, all
 * last synced two days ago, are skipped by the run, not counted due by the fan-out, not stale for
 * /cron/status (200); the two waiting for their company are attention with their reason, in
 * /cron/status and in the console.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.js';
import { inboxSyncJob } from '../../lib/jobs/inbox-sync/index.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';
import { statusRoute } from '../../lib/cron/route.js';
import { consoleRoute } from '../../lib/console/route.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { createCompany, createIntegration, messagesOf, runSync, simpleMail } from '../helpers/inbox-fixtures.js';
import { storeGrant } from '../helpers/oauth-fixtures.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { serveHandler } from '../helpers/http.js';
import { testRuntime } from '../helpers/runtime.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';

const REAUTH_REASON = 'Autorisation Microsoft révoquée : reconnectez votre boîte Microsoft dans Lokario.';
const PAUSED_REASON = 'Identifiants refusés par le serveur IMAP (5 fois de suite)';

type Body = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL')(
  'one mailbox-eligibility predicate: run, fan-out, freshness, attention, console',
  () => {
    let t: TestDatabase;
    let d: Dovecot;
    let active: number;
    let inactive: number;
    const ids = { good: 0, reauth: 0, paused: 0, inactiveCompany: 0 };

    beforeAll(async () => {
      t = await createTestDatabase('inbox_eligibility');
      d = await startDovecot({ pool: 4 });
      const db = t.handle.db;
      active = await createCompany(db);
      inactive = await createCompany(db);
      await db.execute(sql`update companies set is_active = false where id = ${inactive}`);
      // every mailbox has valid credentials and a new message: only the predicate keeps the run away
      const box = async (companyId: number, label: string) => {
        const b = d.takeMailbox();
        await d.append(b.user, b.password, [simpleMail(`${label}@eligibility.test`)]);
        return createIntegration(db, companyId, d, b.user, b.password);
      };
      ids.good = await box(active, 'good');
      ids.reauth = await box(active, 'reauth');
      ids.paused = await box(active, 'paused');
      ids.inactiveCompany = await box(inactive, 'inactive');
      await storeGrant(db, ids.reauth, { refreshToken: 'revoked-refresh', accessToken: null, expiresAt: null });
      const twoDaysAgo = sql`now() - interval '2 days'`;
      await db.execute(
        sql`update inbox_integrations set last_sync_status = 'needs_reauth', last_sync_error = ${REAUTH_REASON}, last_sync_at = ${twoDaysAgo} where id = ${ids.reauth}`,
      );
      await db.execute(
        sql`update inbox_integrations set last_sync_status = 'paused', last_sync_error = ${PAUSED_REASON}, consecutive_failures = 5, last_sync_at = ${twoDaysAgo} where id = ${ids.paused}`,
      );
      // in error and stale: only its company being inactive keeps it out of every list
      await db.execute(
        sql`update inbox_integrations set last_sync_status = 'error', last_sync_error = 'Serveur injoignable', consecutive_failures = 1, last_sync_at = ${twoDaysAgo} where id = ${ids.inactiveCompany}`,
      );
    }, 60_000);
    afterAll(async () => {
      await d?.stop();
      await t?.drop();
    });

    const rows = () =>
      queryRows<{ id: number; last_sync_status: string | null; updated_at: string; consecutive_failures: number }>(
        t.handle.db,
        sql`
    select id, last_sync_status, updated_at::text, consecutive_failures from inbox_integrations where id <> ${ids.good} order by id`,
      );

    async function status(): Promise<{ code: number; body: Body }> {
      const { rt } = testRuntime({}, t.handle);
      const srv = await serveHandler(statusRoute(JOB_REGISTRY, () => rt));
      try {
        const res = await fetch(srv.url);
        return { code: res.status, body: (await res.json()) as Body };
      } finally {
        await srv.close();
      }
    }

    it('/cron/status answers 200: only the eligible mailbox counts for freshness; the two waiting for their company are attention, with their reason', async () => {
      const { code, body } = await status();
      expect(body.inboxFreshness).toMatchObject({ mailboxes: 1, healthy: true });
      expect(code).toBe(200);
      expect(body.oauthMailboxes).toEqual({
        needsReauth: 1,
        integrations: [{ id: ids.reauth, companyId: active, provider: 'microsoft', reason: REAUTH_REASON }],
      });
      expect(body.inbox.integrationsInError).toBe(1);
      expect(body.inbox.integrations).toEqual([
        expect.objectContaining({ id: ids.paused, last_sync_status: 'paused', reason: PAUSED_REASON }),
      ]);
      // progress is about the mailboxes synced: neither waiting one is "stalled"
      expect(body.inbox.progress.mailboxes.map((m: Body) => m.id)).toEqual([ids.good]);
    });

    it('the fan-out counts only the eligible mailbox as due', async () => {
      expect(await inboxSyncJob.sweep!.countDue(t.handle.db, new Date())).toBe(1);
    });

    it('the run syncs the eligible mailbox and skips the three others (no login, nothing imported, rows untouched); the status stays 200', async () => {
      const before = await rows();
      const r = await runSync(t.handle, d);
      expect(r.body.stats).toMatchObject({ integrations: 1, synced: 1, failed: 0, needsReauth: 0, paused: 0 });
      expect((await messagesOf(t.handle.db, active)).map((m) => m.external_id)).toEqual(['good@eligibility.test']);
      expect(await messagesOf(t.handle.db, inactive)).toEqual([]);
      expect(await rows()).toEqual(before);
      expect(await inboxSyncJob.sweep!.countDue(t.handle.db, new Date())).toBe(1); // synced, due again next run; still only it
      const after = await status();
      expect(after.code).toBe(200);
      expect(after.body.jobs.find((j: Body) => j.job === 'inbox-sync')).toMatchObject({ health: 'healthy' });
    });

    it("the console lists the two waiting for their company, with their reason, and not the inactive company's mailbox", async () => {
      const { rt } = testRuntime({}, t.handle); // no password outside production: the local console
      const srv = await serveHandler(consoleRoute(JOB_REGISTRY, () => rt));
      try {
        const html = await (await fetch(`${srv.url}/cron`)).text();
        const row = (id: number) => new RegExp(`<tr data-integration="${id}">(.*?)</tr>`).exec(html)?.[1] ?? null;
        expect(row(ids.reauth)).toContain('À reconnecter (OAuth)');
        expect(row(ids.reauth)).toContain(REAUTH_REASON);
        expect(row(ids.paused)).toContain('Suspendue');
        expect(row(ids.paused)).toContain(PAUSED_REASON);
        expect(row(ids.inactiveCompany)).toBeNull();
        expect(row(ids.good)).toBeNull();
      } finally {
        await srv.close();
      }
    });
  },
);
