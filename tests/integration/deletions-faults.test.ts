import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import type { TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { databaseOnDriver, type DriverDatabase } from '../helpers/drivers.js';
import { runJob } from '../../lib/cron/run.js';
import { accountDeletionsJob, createAccountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';
import { queryRows, type DbHandle } from '../../db/client.js';
import { dueOwnerCompany, dueRequest, insertCompany, insertUser, remainingRows, seedTenant } from './deletions-seed.js';
import type { Job } from '../../lib/cron/types.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';

const NOW = new Date('2026-03-10T02:00:00Z');

/** Waits until some backend of the database is blocked on a lock (a state, not a duration). */
async function untilBlockedOnLock(url: string, label: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (let i = 0; i < 500; i++) {
      const { rows } = await c.query(`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`);
      if (rows.length > 0) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`${label}: no backend ever blocked on a lock`);
  } finally {
    await c.end();
  }
}

for (const driver of ['pg', 'neon'] as const) {
  describePg(`account deletion faults (${driver} driver)`, () => {
    let t: TestDatabase;
    let handle: DbHandle;
    let onDriver: DriverDatabase;
    let sink: Awaited<ReturnType<typeof startSmtpSink>>;

    beforeAll(async () => {
      onDriver = await databaseOnDriver(driver, `delfault${driver}`);
      ({ t, handle } = onDriver);
      sink = await startSmtpSink();
    });
    afterAll(async () => {
      await sink?.close();
      await onDriver?.close();
    });
    beforeEach(async () => {
      sink.received.length = 0;
      await t.handle.db.execute(sql`update users set deletion_requested_at = null, deletion_scheduled_at = null`);
    });

    const run = (job: Job = accountDeletionsJob) => {
      const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24), SMTP_URL: sink.url }, handle);
      return runJob(job, 'http', { dryRun: false, scope: {}, nowOverride: NOW }, rt);
    };

    /** Nothing of the account changed: every seeded row is there, the request is still visible, no log, no email. */
    async function expectUntouched(a: Awaited<ReturnType<typeof seedTenant>>) {
      const db = t.handle.db;
      const left = await remainingRows(db, a.ids);
      expect(left).toEqual(Object.fromEntries([...a.ids].map(([k, v]) => [k, [...v].sort((x, y) => x - y)])));
      const [u] = await queryRows<{ requested: unknown }>(
        db,
        sql`select deletion_requested_at as requested from users where id = ${a.ids.get('users')![0]}`,
      );
      expect(u.requested).not.toBeNull();
      expect(await queryRows(db, sql`select 1 from account_deletion_log where company_id = ${a.companyId}`)).toEqual([]);
      const [inv] = await queryRows(db, sql`select company_id, notes from invoices where id = ${a.ids.get('invoices')![0]}`);
      expect(inv).toEqual({ company_id: a.companyId, notes: 'Code porte 1234, demander Mme Dupont' });
      expect(sink.received).toHaveLength(0);
    }

    it('a crash after some tables (injected failure) leaves nothing half-deleted; the next run completes', async () => {
      const a = await seedTenant(t.handle.db, `CR${driver}`, NOW, dueOwnerCompany(`CR${driver}`, NOW));
      const crashing = createAccountDeletionsJob({
        hooks: {
          afterStep: (table) => {
            if (table === 'invoices') throw new Error('simulated crash after invoices');
          },
        },
      });
      const res = await run(crashing);
      expect(httpStatusOf(res)).toBe(200);
      expect(res.body.stats).toMatchObject({ deletedUsers: 0, failures: 1 });
      expect(res.body.errors).toEqual([
        expect.objectContaining({ scope: 'account', code: 'deletion_failed', message: 'simulated crash after invoices' }),
      ]);
      await expectUntouched(a);

      const again = await run();
      expect(again.body.stats).toMatchObject({ deletedUsers: 1, deletedCompanies: 1, failures: 0 });
      expect(Object.keys(await remainingRows(t.handle.db, a.ids)).sort()).toEqual(['invoice_lines', 'invoice_payments', 'invoices']);
    });

    it('the database refusing the last step (a trigger that raises) rolls everything back; the next run completes', async () => {
      const db = t.handle.db;
      const a = await seedTenant(db, `TR${driver}`, NOW, dueOwnerCompany(`TR${driver}`, NOW));
      await db.execute(
        sql.raw(
          `create function refuse_delete() returns trigger language plpgsql as $$ begin raise exception 'simulated disk failure'; end $$`,
        ),
      );
      await db.execute(
        sql.raw(`create trigger refuse_company_delete before delete on companies for each row execute function refuse_delete()`),
      );
      try {
        const res = await run();
        expect(res.body.stats).toMatchObject({ deletedUsers: 0, failures: 1 });
        expect(res.body.errors).toEqual([expect.objectContaining({ code: 'database_error', message: 'simulated disk failure' })]);
        await expectUntouched(a);
      } finally {
        await db.execute(sql.raw(`drop trigger refuse_company_delete on companies; drop function refuse_delete()`));
      }
      expect((await run()).body.stats).toMatchObject({ deletedCompanies: 1 });
    });

    it('the connection dying mid-deletion (backend terminated) leaves nothing half-deleted; the next run completes', async () => {
      const a = await seedTenant(t.handle.db, `KL${driver}`, NOW, dueOwnerCompany(`KL${driver}`, NOW));
      const killing = createAccountDeletionsJob({
        hooks: {
          afterStep: async (table) => {
            if (table !== 'conversations') return;
            const c = new pg.Client({ connectionString: t.url });
            await c.connect();
            await c.query(
              `select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and state like 'idle in transaction%' and pid <> pg_backend_pid()`,
            );
            await c.end();
          },
        },
      });
      const res = await run(killing);
      expect(res.body.stats).toMatchObject({ deletedUsers: 0, failures: 1 });
      await expectUntouched(a);
      expect((await run()).body.stats).toMatchObject({ deletedCompanies: 1 });
    });

    it('cancellation race: the user cancels while the job runs, before its lock → not deleted', async () => {
      const db = t.handle.db;
      const companyId = await insertCompany(db, 'Annulation');
      const u = await insertUser(db, { companyId, role: 'owner', ...dueRequest(NOW) });
      // the app's cancellation is in flight: it holds the user row and has not committed yet
      const app = new pg.Client({ connectionString: t.url });
      await app.connect();
      await app.query('begin');
      await app.query('update users set deletion_requested_at = null, deletion_scheduled_at = null where id = $1', [u]);
      const job = run(); // selected the account already (the selection does not lock), now waits on the row lock
      await untilBlockedOnLock(t.url, 'deletion waiting for the cancelling transaction');
      await app.query('commit');
      await app.end();
      const res = await job;
      expect(res.body.stats).toMatchObject({ due: 1, deletedUsers: 0, skippedCancelled: 1, failures: 0 });
      expect(await queryRows(db, sql`select id from users where id = ${u}`)).toHaveLength(1);
      expect(await queryRows(db, sql`select id from companies where id = ${companyId}`)).toHaveLength(1);
      expect(await queryRows(db, sql`select 1 from account_deletion_log where user_id = ${u}`)).toEqual([]);
      expect(sink.received).toHaveLength(0);
    });

    it('cancellation race: a cancellation that arrives after the deletion took its lock waits, then finds nothing to cancel', async () => {
      const db = t.handle.db;
      const companyId = await insertCompany(db, 'Trop tard');
      const u = await insertUser(db, { companyId, role: 'owner', ...dueRequest(NOW) });
      let cancelled: Promise<number | null> | undefined;
      const job = createAccountDeletionsJob({
        hooks: {
          afterLock: async () => {
            const app = new pg.Client({ connectionString: t.url });
            await app.connect();
            cancelled = app
              .query('update users set deletion_requested_at = null, deletion_scheduled_at = null where id = $1', [u])
              .then((r) => r.rowCount)
              .finally(() => app.end());
            await untilBlockedOnLock(t.url, 'cancellation waiting for the deletion');
          },
        },
      });
      const res = await run(job);
      expect(res.body.stats).toMatchObject({ deletedUsers: 1, deletedCompanies: 1 });
      expect(await cancelled).toBe(0);
      expect(await queryRows(db, sql`select id from users where id = ${u}`)).toEqual([]);
    });
  });
}
