/**
 * Crash residue is visible and small (real PostgreSQL): /cron/status counts `unknown` sends and
 * stale `sending` claims as attention (`degraded`, 503), shows a crashed run as failed, and a
 * lease whose holder has provably finished is taken over at once. Plus the keyset cursor that
 * must advance through thousands of follow-ups sharing one due instant.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { serveHandler } from '../helpers/http.js';
import { testRuntime } from '../helpers/runtime.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { queryRows } from '../../db/client.js';
import { statusRoute } from '../../lib/cron/route.js';
import { acquireLease } from '../../lib/cron/runs.js';
import { CRASHED_RUN_ERROR, readStatus } from '../../lib/cron/status.js';
import { STALE_CLAIM_SEC } from '../../lib/mail/claimed-send.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import { handContext, seedCompany, wipe } from './followups-fixtures.js';
import { insertDueInvoiceFollowups } from '../helpers/seed.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';

describePg('crash residue: status, crashed runs, leases; cursors that advance', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('crash_residue');
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(async () => {
    await wipe(t.handle.db);
    await t.handle.db.execute(sql`truncate mail_sends, appointment_reminders`);
  });

  const succeededRun = (job: string) =>
    t.handle.db.execute(sql`insert into cron_runs (id, job, trigger, started_at, finished_at, outcome)
    values (${`ok-${job}-${Math.random()}`}, ${job}, 'http', now(), now(), 'succeeded')`);

  it('an `unknown` send or a stale `sending` claim makes its job `degraded`, and the status answers 503', async () => {
    const db = t.handle.db;
    for (const job of ['inbox-sync', 'followups', 'account-deletions', 'overdue-reminders']) await succeededRun(job);
    const { rt } = testRuntime({}, t.handle);
    const srv = await serveHandler(statusRoute(JOB_REGISTRY, () => rt));
    try {
      let res = await fetch(srv.url);
      expect(res.status).toBe(200);

      await db.execute(sql`insert into mail_sends (key, kind, delivery) values ('k:1', 'account-deleted', 'unknown')`);
      await db.execute(
        sql`insert into mail_sends (key, kind, delivery, claimed_at) values ('k:2', 'account-deleted', 'sending', now() - make_interval(secs => ${STALE_CLAIM_SEC + 30}))`,
      );
      await db.execute(sql`insert into mail_sends (key, kind, delivery) values ('k:3', 'account-deleted', 'sending')`); // a live claim: not residue
      res = await fetch(srv.url);
      expect(res.status).toBe(503);
      const body = (await res.json()) as any;
      expect(body.healthy).toBe(false);
      const job = body.jobs.find((j: any) => j.job === 'account-deletions');
      expect(job).toMatchObject({ health: 'degraded', healthy: false, attention: { unknownSends: 1, staleClaims: 1 } });
      expect(job.reason).toMatch(/unknown state/);
      expect(body.jobs.find((j: any) => j.job === 'followups')).toMatchObject({
        health: 'healthy',
        attention: { unknownSends: 0, staleClaims: 0 },
      });
      expect(body.deletionEmails).toEqual({ sendsInUnknownState: 1, staleSendingClaims: 1 });
    } finally {
      await srv.close();
      await db.execute(sql`truncate mail_sends`);
    }
  });

  it('a crashed run (no finished_at, no live lease) is shown as failed; a running one is not', async () => {
    const db = t.handle.db;
    await db.execute(
      sql`insert into cron_runs (id, job, trigger, started_at, outcome) values ('crashed-1', 'followups', 'http', now() - interval '5 minutes', 'running')`,
    );
    await db.execute(sql`insert into cron_leases (job, holder, expires_at) values ('followups', 'crashed-1', now() - interval '1 minute')`);
    await db.execute(
      sql`insert into cron_runs (id, job, trigger, started_at, outcome) values ('live-1', 'overdue-reminders', 'http', now() - interval '30 seconds', 'running')`,
    );
    await db.execute(
      sql`insert into cron_leases (job, holder, expires_at) values ('overdue-reminders', 'live-1', now() + interval '1 minute')`,
    );
    const status = await readStatus(db, new Date(), JOB_REGISTRY);
    expect(status.jobs.find((j) => j.job === 'followups')?.lastRun).toMatchObject({ outcome: 'failed', error: CRASHED_RUN_ERROR });
    expect(status.jobs.find((j) => j.job === 'overdue-reminders')?.lastRun).toBeNull();
  });

  it('a lease whose holder has provably finished (its release failed) is taken over at once; a live one is not', async () => {
    const db = t.handle.db;
    await db.execute(
      sql`insert into cron_runs (id, job, trigger, started_at, finished_at, outcome) values ('done-1', 'followups', 'http', now(), now(), 'succeeded')`,
    );
    await db.execute(sql`insert into cron_leases (job, holder, expires_at) values ('followups', 'done-1', now() + interval '2 minutes')`);
    expect(await acquireLease(db, 'followups', 'next-1', 120)).toBe(true);
    await db.execute(
      sql`insert into cron_runs (id, job, trigger, started_at, outcome) values ('next-1', 'followups', 'http', now(), 'running')`,
    );
    expect(await acquireLease(db, 'followups', 'next-2', 120)).toBe(false);
  });

  it('3,000 due follow-ups sharing one microsecond instant: the keyset cursor advances through all of them, and the one after them is sent', async () => {
    const db = t.handle.db;
    const sink = await startSmtpSink();
    try {
      const s = await seedCompany(db, { clientEmail: null }); // no email: every one waits, none is sent
      // one statement, one `now()`-like instant with microseconds, as rows written together get
      await insertDueInvoiceFollowups(db, s, { count: 3000, numberPrefix: 'FAC-', totalTtc: 100, dueDate: '2026-03-01T08:00:00.123456Z' });
      const other = await seedCompany(db);
      const [inv] = await queryRows<{ id: number }>(
        db,
        sql`insert into invoices (company_id, client_id, number, status, total_ttc, sent_at)
        values (${other.companyId}, ${other.clientId}, 'FAC-LAST', 'ENVOYEE', 100, '2026-01-01T09:00:00Z') returning id`,
      );
      await db.execute(sql`insert into followups (company_id, client_id, type, source_type, source_id, source_label, due_date, status, auto_enabled)
        values (${other.companyId}, ${other.clientId}, 'FACTURE_IMPAYEE', 'invoice', ${inv.id}, 'Facture FAC-LAST', '2026-03-01T08:00:00.123456Z', 'A_FAIRE', true)`);
      const res = await followupsJob.run(handContext(db, { SMTP_URL: sink.url }, new Date('2026-03-11T10:00:00Z')));
      expect(res.partial).toBe(false);
      expect(res.stats.due).toBe(3001); // each row examined once, none twice
      // they stay due (waiting, not stopped): only the cursor can move the run past them
      expect(res.stats.waiting).toEqual({ no_client_email: 3000 });
      expect(res.stats.sent).toBe(1);
      expect(sink.received).toHaveLength(1);
    } finally {
      await sink.close();
    }
  }, 120_000);
});
