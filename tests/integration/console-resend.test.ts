/**
 * The operator's answer for an `unknown` send goes through the send protocol (docs/sending.md,
 * "The senders"): "non envoyé — renvoyer" is the protocol's release (a follow-up step keeps its
 * history row and try count, the next run sends it once), "envoyé" its resolve. The unknown sends
 * come from real runs against an SMTP server that hangs after DATA; the resends go to a real SMTP
 * sink. Also: every claim table of the database is declared in lib/mail/sends.ts, and each
 * sender's views name their rows with their own kind.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { startBadSmtp, startSmtpSink } from '../../devtools/smtp.js';
import { runJob } from '../../lib/cron/run.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import { accountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';
import { queryRows, type Db } from '../../db/client.js';
import { readUnknownSends, resolveUnknownSend } from '../../lib/console/sql.js';
import { SEND_TABLES } from '../../lib/mail/sends.js';
import { seedUnknownReminder } from '../../devtools/console-fixtures.js';
import { followupRow, history, seedCompany, seedFollowup, seedInvoice, wipe } from './followups-fixtures.js';
import { DAY_MS, insertUser } from './deletions-seed.js';
import type { Job } from '../../lib/cron/types.js';

const SECRET = 'x'.repeat(24);
const NOW = new Date('2026-03-11T10:00:00Z');

describePg('the console settles unknown sends through the send protocol', () => {
  let t: TestDatabase;
  let db: Db;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  beforeAll(async () => {
    t = await createTestDatabase('console_resend');
    db = t.handle.db;
    sink = await startSmtpSink();
  });
  afterAll(async () => {
    await sink?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await wipe(db);
    await db.execute(
      sql`truncate mail_sends, appointment_reminders, appointments, appointment_types, operator_actions, users restart identity cascade`,
    );
    sink.received.length = 0;
  });

  const run = (job: Job, smtpUrl: string, now = NOW, extra: Record<string, string> = {}) =>
    runJob(
      job,
      'http',
      { dryRun: false, scope: {}, nowOverride: now },
      testRuntime({ CRON_SECRET: SECRET, SMTP_URL: smtpUrl, ...extra }, t.handle).rt,
    );

  /** A real run whose SMTP server takes the body and never answers: the step ends `unknown`. */
  async function unknownByRun(job: Job, now = NOW) {
    const bad = await startBadSmtp('hang-after-data');
    try {
      const r = await run(job, bad.url, now, { CRON_BUDGET_MS: '4000', SMTP_SOCKET_TIMEOUT_MS: '600000' });
      expect(bad.bodies).toBe(1);
      return r;
    } finally {
      await bad.close();
    }
  }

  const historyRows = (followupId: number) =>
    queryRows<{ id: number; delivery: string; attempts: number; error: string | null }>(
      db,
      sql`
    select id, delivery::text, attempts, error from followup_history where followup_id = ${followupId} order by id`,
    );

  it('follow-up "resend": the history row stays, the try is given back, the next run sends the step once', async () => {
    const s = await seedCompany(db);
    const f = await seedFollowup(db, s, { sourceId: await seedInvoice(db, s) });
    await unknownByRun(followupsJob);
    const [before] = await historyRows(f);
    expect(before).toMatchObject({ delivery: 'unknown', attempts: 1 });
    expect((await followupRow(db, f)).status).toBe('EN_ATTENTE');
    const [listed] = await readUnknownSends(db);
    expect(listed.ref).toBe(`followup_step:${before.id}`);

    await resolveUnknownSend(db, listed.ref, 'resend', 'console:claire');
    const [released] = await historyRows(f);
    // the same row, its error kept as history; the try declared not delivered no longer counts
    expect(released).toEqual({ id: before.id, delivery: 'failed', attempts: 0, error: before.error });
    expect((await followupRow(db, f)).status).toBe('A_FAIRE');
    await expect(resolveUnknownSend(db, listed.ref, 'resend', 'console:claire')).rejects.toThrow(/déjà résolu/);

    await run(followupsJob, sink.url);
    await run(followupsJob, sink.url);
    expect(sink.received).toHaveLength(1);
    expect(await historyRows(f)).toEqual([expect.objectContaining({ id: before.id, delivery: 'sent', attempts: 1 })]);
    const log = await queryRows<{ action: string; target: string }>(db, sql`select action, target from operator_actions`);
    expect(log).toEqual([{ action: 'resolve_send', target: listed.ref }]);
  });

  it('follow-up "resend" after earlier refused tries keeps their count: the retry is the next try, within the try limit', async () => {
    const s = await seedCompany(db);
    const f = await seedFollowup(db, s, { sourceId: await seedInvoice(db, s) });
    // two refused tries (4xx) then a third with no answer: the last allowed try is `unknown`
    await db.execute(sql`insert into followup_history (followup_id, company_id, message, step, delivery, attempts, claimed_at, handed_at, sent_at, error)
      values (${f}, ${s.companyId}, 'Bonjour', 1, 'unknown', 3, now() - interval '2 hours', now() - interval '2 hours', now() - interval '2 hours', 'smtp_timeout: no answer after DATA')`);
    await db.execute(sql`update followups set status = 'EN_ATTENTE' where id = ${f}`);
    const [h] = await historyRows(f);
    await resolveUnknownSend(db, `followup_step:${h.id}`, 'resend', 'cli:bob');
    expect(await historyRows(f)).toEqual([{ id: h.id, delivery: 'failed', attempts: 2, error: 'smtp_timeout: no answer after DATA' }]);
    await run(followupsJob, sink.url);
    expect(sink.received).toHaveLength(1);
    expect(await history(db, f)).toEqual([expect.objectContaining({ step: 1, delivery: 'sent', attempts: 3 })]);
  });

  it('follow-up "sent": recorded as delivered, the follow-up goes on, nothing is sent again', async () => {
    const s = await seedCompany(db);
    const f = await seedFollowup(db, s, { sourceId: await seedInvoice(db, s) });
    await unknownByRun(followupsJob);
    const [h] = await historyRows(f);
    await resolveUnknownSend(db, `followup_step:${h.id}`, 'sent', 'console:claire');
    expect(await historyRows(f)).toEqual([{ id: h.id, delivery: 'sent', attempts: 1, error: null }]);
    expect((await followupRow(db, f)).status).toBe('A_FAIRE');
    await run(followupsJob, sink.url);
    expect(sink.received).toHaveLength(0);
  });

  it('deletion reminder "resend": the claim is given back the protocol\'s way, the next run sends the reminder once', async () => {
    const at = (days: number) => new Date(NOW.getTime() + days * DAY_MS);
    const user = await insertUser(db, {
      companyId: null,
      role: 'super_admin',
      email: 'admin@exemple.fr',
      deletionRequestedAt: at(-23),
      deletionScheduledAt: at(7),
    });
    await unknownByRun(accountDeletionsJob);
    const [claim] = await queryRows<{ id: number; delivery: string }>(db, sql`select id, delivery::text from mail_sends`);
    expect(claim.delivery).toBe('unknown');
    await resolveUnknownSend(db, `deletion_email:${claim.id}`, 'resend', 'console:claire');
    expect(await queryRows(db, sql`select id from mail_sends`)).toEqual([]);
    const [u] = await queryRows<{ s: Date | null }>(db, sql`select deletion_reminder_sent_at as s from users where id = ${user}`);
    expect(u.s).toBeNull();
    await run(accountDeletionsJob, sink.url);
    await run(accountDeletionsJob, sink.url);
    expect(sink.received.filter((m) => m.to.includes('admin@exemple.fr'))).toHaveLength(1);
  });

  it("every claim table of the database is declared once, and each sender's views name its rows with its kind", async () => {
    const claimTables = await queryRows<{ table_name: string }>(
      db,
      sql`
      select table_name from information_schema.columns
      where table_schema = current_schema() and column_name in ('delivery', 'claimed_by', 'handed_at')
      group by table_name having count(*) = 3 order by table_name`,
    );
    expect(claimTables.map((r) => r.table_name)).toEqual(SEND_TABLES.map((x) => x.name).sort());
    expect(new Set(SEND_TABLES.map((x) => x.kind)).size).toBe(SEND_TABLES.length);

    const s = await seedCompany(db);
    const f = await seedFollowup(db, s, { sourceId: await seedInvoice(db, s) });
    await unknownByRun(followupsJob);
    const reminder = await seedUnknownReminder(db, s.companyId);
    await insertUser(db, {
      companyId: null,
      role: 'super_admin',
      email: 'admin@exemple.fr',
      deletionRequestedAt: new Date(NOW.getTime() - 23 * DAY_MS),
      deletionScheduledAt: new Date(NOW.getTime() + 7 * DAY_MS),
    });
    await unknownByRun(accountDeletionsJob);
    const [h] = await historyRows(f);
    const [m] = await queryRows<{ id: number }>(db, sql`select id from mail_sends`);
    const byTable: Record<string, number> = { followup_history: h.id, appointment_reminders: reminder, mail_sends: m.id };

    const listed = await readUnknownSends(db);
    expect(listed.map((x) => x.ref).sort()).toEqual(SEND_TABLES.map((x) => `${x.kind}:${byTable[x.name]}`).sort());
    for (const x of SEND_TABLES) {
      const own = sql`${sql.identifier(x.alias)}.id = ${byTable[x.name]}`;
      const rows = await queryRows<{ kind: string; id: number }>(db, x.bounceView.select(own));
      expect(rows.map((r) => ({ kind: r.kind, id: Number(r.id) }))).toEqual([{ kind: x.kind, id: byTable[x.name] }]);
    }
  });
});
