import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { createIntegration, MASTER_KEY, runSync, simpleMail } from '../helpers/inbox-fixtures.js';
import { BOUNCE_SAMPLES, softBounce, type SampleInput } from '../helpers/bounce-samples.js';
import { createInboxSyncJob } from '../../lib/jobs/inbox-sync/index.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';
import { processCompanyReports } from '../../lib/bounces/act.js';
import { handContext } from './followups-fixtures.js';
import { appointment, appointmentType, client, company, handContext as overdueContext, testConfig } from './overdue-fixtures.js';
import {
  FRONTEND,
  NOW,
  bounceNotifications,
  bouncesOf,
  dueFollowup,
  followupState,
  runFollowups,
  sentStep,
  tenant,
} from './bounces-fixtures.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');
const DSN = BOUNCE_SAMPLES[0];
let tags = 0;
const at = (min: number) => new Date(NOW.getTime() + min * 60_000);
const input = (o: Partial<SampleInput> & Pick<SampleInput, 'rcpt' | 'messageId' | 'subject'>): SampleInput => ({
  sender: 'contact@societe.example',
  date: at(5),
  tag: `b${++tags}-${process.pid}-${Date.now()}`,
  ...o,
});
type SyncBody = {
  stats: { bounces: { hard: number; soft: number; ignored: number; absences: number; platform?: Record<string, unknown> } };
};

describeImap('bounces: reminders, soft bounces, duplicates, concurrency, auto-replies, the platform mailbox', () => {
  let t: TestDatabase;
  let d: Dovecot;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  const sync = async (min: number, env: Record<string, string> = {}) =>
    (await runSync(t.handle, d, { env: { FRONTEND_URL: FRONTEND, ...env }, now: at(min) })).body as SyncBody;
  beforeAll(async () => {
    t = await createTestDatabase('bounce_flow');
    d = await startDovecot({ pool: 30 });
    sink = await startSmtpSink();
  }, 60_000);
  afterAll(async () => {
    await sink?.close();
    await d?.stop();
    await t?.drop();
  });

  it('an appointment reminder that bounces: marked bounced, the company notified; the next reminder to that address is not sent', async () => {
    const db = t.handle.db;
    const c = await company(db, { name: 'Cabinet Lefèvre', settings: {} });
    const email = 'jeanne.moreau@client-rdv.fr';
    const cl = await client(db, c, email, 'Jeanne Moreau');
    const type = await appointmentType(db, c);
    const box = d.takeMailbox();
    await createIntegration(db, c, d, box.user, box.password);
    await appointment(db, { companyId: c, clientId: cl, typeId: type, start: '2026-03-12T09:00:00Z' });
    const config = testConfig({ SMTP_URL: sink.url, FRONTEND_URL: FRONTEND });
    const run = async (now: Date) => {
      const ctx = overdueContext(db, { now, scope: { companyId: c }, config });
      try {
        return await overdueRemindersJob.run(ctx);
      } finally {
        ctx.close();
      }
    };
    expect((await run(NOW)).stats.reminders).toMatchObject({ sent: 1 });
    const [rem] = await queryRows<{ id: number; message_id: string }>(
      db,
      sql`select id, trim(both '<>' from message_id) as message_id from appointment_reminders where company_id = ${c}`,
    );
    await d.append(box.user, box.password, [
      BOUNCE_SAMPLES[2].build(input({ rcpt: email, messageId: rem.message_id, subject: 'Rappel : votre rendez-vous' })),
    ]);
    expect((await sync(10)).stats.bounces).toMatchObject({ hard: 1 });
    const [after] = await queryRows<{ delivery: string; error: string }>(
      db,
      sql`select delivery::text, error from appointment_reminders where id = ${rem.id}`,
    );
    expect(after.delivery).toBe('bounced');
    expect(after.error).toContain('5.1.10');
    expect(await bouncesOf(db, c)).toEqual([
      expect.objectContaining({ outcome: 'hard', send_kind: 'appointment_reminder', matched_by: 'message_id', recipient: email }),
    ]);
    const notes = await bounceNotifications(db, c);
    expect(notes).toHaveLength(1);
    expect(notes[0].message).toMatch(
      /^Le rappel du rendez-vous du 12\/03\/2026 envoyé à Jeanne Moreau \(jeanne\.moreau@client-rdv\.fr\) n'a pas pu être distribué : adresse inconnue/,
    );

    await appointment(db, { companyId: c, clientId: cl, typeId: type, start: '2026-03-13T09:00:00Z' });
    const before = sink.received.length;
    expect((await run(at(24 * 60))).stats.reminders).toMatchObject({ sent: 0, skipped: { bounced: 1 } });
    expect(sink.received.length).toBe(before);
  }, 60_000);

  it('three soft bounces in a row for one address make a hard one: nothing changes before the third', async () => {
    const db = t.handle.db;
    const s = await tenant(db, d, 'soft');
    const ids = [await dueFollowup(db, s), await dueFollowup(db, s), await dueFollowup(db, s)];
    expect((await runFollowups(db, sink.url)).stats.sent).toBe(3);
    for (const [k, id] of ids.entries()) {
      const step = await sentStep(db, id);
      await d.append(s.box.user, s.box.password, [
        softBounce(input({ rcpt: s.email, messageId: step.message_id, subject: step.subject, date: at(5 + k) })),
      ]);
      const stats = (await sync(10 + k * 10)).stats.bounces;
      if (k < 2) {
        expect(stats).toMatchObject({ soft: 1, hard: 0 });
        expect((await sentStep(db, id)).delivery).toBe('sent');
        for (const f of ids) expect((await followupState(db, f)).status).toBe('A_FAIRE');
        expect(await bounceNotifications(db, s.companyId)).toHaveLength(0);
      } else {
        expect(stats).toMatchObject({ soft: 0, hard: 1 });
      }
    }
    expect((await bouncesOf(db, s.companyId)).map((b) => [b.severity, b.outcome])).toEqual([
      ['soft', 'soft'],
      ['soft', 'soft'],
      ['soft', 'hard'],
    ]);
    expect((await sentStep(db, ids[2])).delivery).toBe('bounced');
    expect((await sentStep(db, ids[0])).delivery).toBe('sent');
    for (const f of ids) expect(await followupState(db, f)).toMatchObject({ status: 'EN_ATTENTE', hold_reason: 'bounced' });
    const notes = await bounceNotifications(db, s.companyId);
    expect(notes).toHaveLength(1);
    expect(notes[0].message).toContain('plusieurs échecs temporaires de suite');
  }, 60_000);

  it('a bounce for a message we did not send is ignored, and counted', async () => {
    const db = t.handle.db;
    const s = await tenant(db, d, 'unknown');
    const f = await dueFollowup(db, s);
    await runFollowups(db, sink.url);
    await d.append(s.box.user, s.box.password, [
      DSN.build(input({ rcpt: 'quelquun@ailleurs.fr', messageId: 'CAF=abc123@mail.gmail.com', subject: 'Photos des vacances' })),
    ]);
    expect((await sync(10)).stats.bounces).toMatchObject({ hard: 0, soft: 0, ignored: 1 });
    expect(await bouncesOf(db, s.companyId)).toEqual([expect.objectContaining({ outcome: 'ignored', send_kind: null, recipient: null })]);
    expect((await sentStep(db, f)).delivery).toBe('sent');
    expect((await followupState(db, f)).status).toBe('A_FAIRE');
    expect(await bounceNotifications(db, s.companyId)).toHaveLength(0);
  }, 60_000);

  it('the same bounce in two mailboxes of the company, synced by concurrent invocations, and processed again: it acts once', async () => {
    const db = t.handle.db;
    const s = await tenant(db, d, 'twice');
    const second = d.takeMailbox();
    await createIntegration(db, s.companyId, d, second.user, second.password);
    const f = await dueFollowup(db, s);
    await runFollowups(db, sink.url);
    const step = await sentStep(db, f);
    const raw = BOUNCE_SAMPLES[8].build(input({ rcpt: s.email, messageId: step.message_id, subject: step.subject }));
    await d.append(s.box.user, s.box.password, [raw]);
    await d.append(second.user, second.password, [raw]);
    // several invocations at once, without the job lease (each mailbox has its own lease; the
    // company's report processing runs in every one of them)
    const job = createInboxSyncJob({ tls: { ca: d.cert } });
    const runs = await Promise.all(
      Array.from({ length: 4 }, () => {
        const ctx = handContext(db, { ENCRYPTION_MASTER_KEY: MASTER_KEY, FRONTEND_URL: FRONTEND }, at(10), {
          scope: { companyId: s.companyId },
        });
        return job.run(ctx).finally(() => ctx.mail.closeAll());
      }),
    );
    const direct = await Promise.all(Array.from({ length: 4 }, () => processCompanyReports(db, s.companyId, FRONTEND)));
    const acted = [...runs.map((r) => (r.stats.bounces as { hard: number }).hard), ...direct.map((c) => c.hard)];
    expect(acted.reduce((a, b) => a + b, 0)).toBe(1);
    expect(await bouncesOf(db, s.companyId)).toHaveLength(1);
    expect(await bounceNotifications(db, s.companyId)).toHaveLength(1);
    expect((await sentStep(db, f)).delivery).toBe('bounced');
    const [{ n }] = await queryRows<{ n: number }>(
      db,
      sql`select count(*)::int as n from inbox_messages where company_id = ${s.companyId} and kind = 'bounce'`,
    );
    expect(n).toBe(1);
    // the bounce stays out of the client's conversation
    const [{ client_id }] = await queryRows<{ client_id: number | null }>(
      db,
      sql`
      select c.client_id from inbox_messages m join conversations c on c.id = m.conversation_id where m.company_id = ${s.companyId} and m.kind = 'bounce'`,
    );
    expect(client_id).toBeNull();
  }, 60_000);

  it('an out-of-office with a return date does not stop the dunning (the date is kept on the follow-up); a real reply in the thread does', async () => {
    const db = t.handle.db;
    const s = await tenant(db, d, 'ooo');
    const f = await dueFollowup(db, s);
    await runFollowups(db, sink.url);
    const step = await sentStep(db, f);
    await d.append(s.box.user, s.box.password, [
      simpleMail(`ooo-${process.pid}@client-ooo.fr`, {
        from: `${s.clientName} <${s.email}>`,
        subject: `Réponse automatique : ${step.subject}`,
        headers: { 'Auto-Submitted': 'auto-replied', 'In-Reply-To': `<${step.message_id}>`, Date: at(30).toUTCString() },
        body: "Bonjour,\r\n\r\nJe suis absent jusqu'au 23 mars inclus. Pour toute urgence, contactez le standard.\r\n",
      }),
    ]);
    expect((await sync(40)).stats.bounces).toMatchObject({ absences: 1, hard: 0 });
    expect(await followupState(db, f)).toMatchObject({
      status: 'A_FAIRE',
      client_away_until: '2026-03-23',
      client_away_note: "Je suis absent jusqu'au 23 mars inclus.",
    });
    // step 2 is due relance_delays[1] days later: the out-of-office did not stop it
    const later = new Date(NOW.getTime() + 20 * 86_400_000);
    const r2 = await runFollowups(db, sink.url, later, s.companyId);
    expect(r2.stats.sent).toBe(1);
    const step2 = await sentStep(db, f, 2);
    await d.append(s.box.user, s.box.password, [
      simpleMail(`reply-${process.pid}@client-ooo.fr`, {
        from: `${s.clientName} <${s.email}>`,
        subject: `Re: ${step2.subject}`,
        headers: { 'In-Reply-To': `<${step2.message_id}>`, Date: new Date(later.getTime() + 3_600_000).toUTCString() },
        body: 'Bonjour, le virement part demain. Cordialement.',
      }),
    ]);
    await runSync(t.handle, d, { env: { FRONTEND_URL: FRONTEND }, now: new Date(later.getTime() + 2 * 3_600_000) });
    const r3 = await runFollowups(db, sink.url, new Date(later.getTime() + 30 * 86_400_000), s.companyId);
    expect(r3.stats.sent).toBe(0);
    expect(r3.stats.stopped).toMatchObject({ client_replied: 1 });
  }, 60_000);

  it('a bounced follow-up resumes once the client has a new address: the bounced step goes to the new one', async () => {
    const db = t.handle.db;
    const s = await tenant(db, d, 'resume');
    const f = await dueFollowup(db, s);
    await runFollowups(db, sink.url);
    const step = await sentStep(db, f);
    await d.append(s.box.user, s.box.password, [DSN.build(input({ rcpt: s.email, messageId: step.message_id, subject: step.subject }))]);
    await sync(10);
    expect(await followupState(db, f)).toMatchObject({ status: 'EN_ATTENTE', hold_reason: 'bounced' });
    const stillBounced = await runFollowups(db, sink.url, at(60), s.companyId);
    expect(stillBounced.stats).toMatchObject({ sent: 0, resumedAfterBounce: 0 });
    await db.execute(sql`update clients set email = 'nouvelle.adresse@client-resume.fr' where id = ${s.clientId}`);
    const r = await runFollowups(db, sink.url, at(120), s.companyId);
    expect(r.stats).toMatchObject({ sent: 1, resumedAfterBounce: 1, retried: 1 });
    expect(sink.received.at(-1)!.to).toEqual(['nouvelle.adresse@client-resume.fr']);
    expect(await followupState(db, f)).toMatchObject({ status: 'A_FAIRE', hold_reason: null });
    expect((await sentStep(db, f)).delivery).toBe('sent');
  }, 60_000);

  it('platform emails: envelope sender by VERP; a bounce in BOUNCE_IMAP_URL naming only the VERP address is matched across companies', async () => {
    const db = t.handle.db;
    const s = await tenant(db, d, 'verp');
    const f = await dueFollowup(db, s);
    const env = { SMTP_URL: sink.url, FRONTEND_URL: FRONTEND, BOUNCE_ADDRESS: 'bounces@lokario.fr', BOUNCE_VERP: '1' };
    const ctx = handContext(db, env, NOW);
    try {
      expect((await (await import('../../lib/jobs/followups/index.js')).followupsJob.run(ctx)).stats.sent).toBe(1);
    } finally {
      ctx.mail.closeAll();
    }
    const step = await sentStep(db, f);
    const envelope = sink.received.at(-1)!.from;
    expect(envelope).toBe(`bounces+${step.message_id.replace('@', '=')}@lokario.fr`);
    const platform = d.takeMailbox();
    // a bounce that quotes nothing of the original: only the envelope (its To) names the send
    const raw = BOUNCE_SAMPLES[11].build(input({ rcpt: s.email, messageId: 'x', subject: 'x', sender: envelope }));
    await d.append(platform.user, platform.password, [raw, simpleMail(`not-a-bounce-${process.pid}@x.fr`)]);
    const url = `imap://${encodeURIComponent(platform.user)}:${encodeURIComponent(platform.password)}@127.0.0.1:${d.port}/INBOX`;
    const body = await sync(10, { BOUNCE_IMAP_URL: url });
    expect(body.stats.bounces.platform).toMatchObject({ status: 'ok', read: 2, hard: 1 });
    expect((await sentStep(db, f)).delivery).toBe('bounced');
    expect(await bouncesOf(db, s.companyId)).toEqual([
      expect.objectContaining({ outcome: 'hard', matched_by: 'verp', recipient: s.email }),
    ]);
    expect(await bounceNotifications(db, s.companyId)).toHaveLength(1);
    // the cursor moved: the next run reads nothing again
    expect((await sync(20, { BOUNCE_IMAP_URL: url })).stats.bounces.platform).toMatchObject({ status: 'ok', read: 0 });
  }, 60_000);
});
