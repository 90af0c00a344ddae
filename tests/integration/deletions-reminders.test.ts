import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { simpleParser } from 'mailparser';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { runJob } from '../../lib/cron/run.js';
import { parseConfig } from '../../lib/config.js';
import { accountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';
import { queryRows, type Db } from '../../db/client.js';
import * as schema from '../../db/schema/index.js';
import { reminderDueWhere } from '../../lib/jobs/account-deletions/sql.js';
import { DAY_MS, handBuiltContext, insertCompany, insertUser } from './deletions-seed.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';

const NOW = new Date('2026-03-10T02:00:00Z');
const at = (days: number) => new Date(NOW.getTime() + days * DAY_MS);

describePg('J-7 deletion reminder', () => {
  let t: TestDatabase;
  let db: Db;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;

  beforeAll(async () => {
    t = await createTestDatabase('delrem');
    db = t.handle.db;
    sink = await startSmtpSink();
  });
  afterAll(async () => {
    await sink?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    sink.received.length = 0;
    await db.execute(sql`update users set deletion_requested_at = null, deletion_scheduled_at = null`);
  });

  const run = (now = NOW) => {
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24), SMTP_URL: sink.url }, t.handle);
    return runJob(accountDeletionsJob, 'http', { dryRun: false, scope: {}, nowOverride: now }, rt);
  };
  const sentAt = async (id: number) => {
    const [r] = await queryRows<{ s: string | null }>(db, sql`select deletion_reminder_sent_at as s from users where id = ${id}`);
    return r.s === null ? null : new Date(r.s);
  };
  const to = (addr: string) => sink.received.filter((m) => m.to.includes(addr));

  it('the "reminder due" rule, evaluated by PostgreSQL at its edges (the one rule the claim and the dry run share)', async () => {
    const admin = (over: Parameters<typeof insertUser>[1]) => insertUser(db, { companyId: null, role: 'super_admin', ...over });
    const edge = await admin({ deletionRequestedAt: at(-23), deletionScheduledAt: at(7) });
    const justPast = await admin({ deletionRequestedAt: at(-23), deletionScheduledAt: new Date(at(7).getTime() + 1) });
    const cancelled = await admin({ deletionRequestedAt: null, deletionScheduledAt: null });
    const alreadySent = await admin({ deletionRequestedAt: at(-23), deletionScheduledAt: at(7), deletionReminderSentAt: at(-1) });
    const dueNow = await admin({ deletionRequestedAt: at(-30), deletionScheduledAt: NOW });
    const earlierRequest = await admin({ deletionRequestedAt: at(-23), deletionScheduledAt: at(7), deletionReminderSentAt: at(-60) });
    const ids = [edge, justPast, cancelled, alreadySent, dueNow, earlierRequest];
    const due = await queryRows<{ id: number }>(
      db,
      sql`select id from users
      where ${reminderDueWhere(NOW, {})} and id = any(${`{${ids.join(',')}}`}::int[]) order by id`,
    );
    expect(due.map((r) => r.id)).toEqual([edge, earlierRequest]);
  });

  it("is sent once across many runs (sequential and simultaneous), in French, with the date in the company's zone", async () => {
    const companyId = await insertCompany(db, 'Rappel');
    await db.insert(schema.companySettings).values({ companyId, settings: { company_info: { timezone: 'America/Martinique' } } });
    await insertUser(db, { companyId, role: 'owner' });
    const u = await insertUser(db, {
      companyId,
      email: 'rappel@example.fr',
      fullName: 'Léa',
      deletionRequestedAt: at(-25),
      deletionScheduledAt: at(5),
    });
    for (let i = 0; i < 4; i++) expect(httpStatusOf(await run())).toBe(200);
    const config = parseConfig({ NODE_ENV: 'test', SMTP_URL: sink.url });
    const ctxs = Array.from({ length: 3 }, () => handBuiltContext(db, config, NOW));
    await Promise.all(ctxs.map((c) => accountDeletionsJob.run(c)));
    for (const c of ctxs) c.mail.closeAll();
    // later runs in the same week do not send it again either
    await run(at(2));
    expect(to('rappel@example.fr')).toHaveLength(1);
    expect(await sentAt(u)).toEqual(NOW);
    // 2026-03-15T02:00Z is the 14th at 22:00 in Martinique
    const mail = await simpleParser(to('rappel@example.fr')[0].raw);
    expect(mail.subject).toBe('Votre compte Lokario sera supprimé le 14/03/2026');
    expect(mail.text).toContain('Bonjour Léa,');
    expect(mail.text).toContain('Elle aura lieu le 14/03/2026 à 22:00');
    expect(mail.text).toContain('Connectez-vous avant cette date et annulez la demande : http://localhost:3000/login');
  });

  it('none for a cancelled request, none too early; sent once the 7-day window opens', async () => {
    await insertUser(db, { email: 'annule@example.fr', deletionRequestedAt: null, deletionScheduledAt: null });
    const later = await insertUser(db, {
      email: 'plustard@example.fr',
      companyId: null,
      role: 'super_admin',
      deletionRequestedAt: at(-20),
      deletionScheduledAt: at(10),
    });
    expect((await run()).body.stats).toMatchObject({ remindersSent: 0 });
    expect(sink.received).toHaveLength(0);
    expect((await run(at(3))).body.stats).toMatchObject({ remindersSent: 1 });
    expect(to('plustard@example.fr')).toHaveLength(1);
    expect(await sentAt(later)).toEqual(at(3));
  });

  it('a reminder sent for an earlier, cancelled request does not stop the reminder of a new request', async () => {
    const u = await insertUser(db, {
      email: 'redemande@example.fr',
      companyId: null,
      role: 'super_admin',
      deletionRequestedAt: at(-24),
      deletionScheduledAt: at(6),
      deletionReminderSentAt: at(-60),
    });
    expect((await run()).body.stats).toMatchObject({ remindersSent: 1 });
    expect(await sentAt(u)).toEqual(NOW);
  });

  it('a temporary SMTP failure gives the claim back: the next run sends it; a permanent one is not retried', async () => {
    const temp = await insertUser(db, {
      email: 'temp@example.fr',
      companyId: null,
      role: 'super_admin',
      deletionRequestedAt: at(-25),
      deletionScheduledAt: at(5),
    });
    sink.failNext(1, 451);
    const first = await run();
    expect(first.body.stats).toMatchObject({ remindersSent: 0, emailFailures: 1 });
    expect(first.body.errors).toEqual([expect.objectContaining({ scope: 'reminder', id: temp, code: 'smtp_temporary' })]);
    expect(await sentAt(temp)).toBeNull();
    expect((await run()).body.stats).toMatchObject({ remindersSent: 1 });
    expect(to('temp@example.fr')).toHaveLength(1);

    const dead = await insertUser(db, {
      email: 'dead@example.fr',
      companyId: null,
      role: 'super_admin',
      deletionRequestedAt: at(-25),
      deletionScheduledAt: at(5),
    });
    sink.failNext(1, 550);
    expect((await run()).body.stats).toMatchObject({ remindersSent: 0, emailFailures: 1 });
    expect(await sentAt(dead)).toEqual(NOW);
    expect((await run()).body.stats).toMatchObject({ remindersSent: 0, emailFailures: 0 });
  });

  it('dry run counts the reminders it would send and claims nothing', async () => {
    const u = await insertUser(db, {
      email: 'dry@example.fr',
      companyId: null,
      role: 'super_admin',
      deletionRequestedAt: at(-25),
      deletionScheduledAt: at(4),
    });
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24), SMTP_URL: sink.url }, t.handle);
    const res = await runJob(accountDeletionsJob, 'http', { dryRun: true, scope: {}, nowOverride: NOW }, rt);
    expect(res.body.stats).toMatchObject({ remindersSent: 1 });
    expect(await sentAt(u)).toBeNull();
    expect(sink.received).toHaveLength(0);
  });
});
