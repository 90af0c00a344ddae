import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { simpleParser } from 'mailparser';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { testRuntime } from '../helpers/runtime.js';
import { runJob } from '../../lib/cron/run.js';
import { queryRows, type Db } from '../../db/client.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';
import { readReminderCandidates } from '../../lib/jobs/overdue-reminders/sql-reminders.js';
import type { Config } from '../../lib/config.js';
import { appointment, appointmentType, client, company, handContext, notificationsOf, testConfig, user } from './overdue-fixtures.js';

type Sink = Awaited<ReturnType<typeof startSmtpSink>>;
type ReminderRow = {
  appointment_id: number;
  hours_before: number;
  start: string;
  delivery: string;
  message_id: string | null;
  error: string | null;
};

describePg('overdue-reminders: appointment reminders (real PostgreSQL, real SMTP)', () => {
  let t: TestDatabase;
  let db: Db;
  let sink: Sink;
  let config: Config;
  beforeAll(async () => {
    t = await createTestDatabase('overdue-rem');
    db = t.handle.db;
    sink = await startSmtpSink();
    config = testConfig({ SMTP_URL: sink.url, MAIL_FROM: 'Lokario <noreply@lokario.fr>' });
  });
  afterAll(async () => {
    await sink?.close();
    await t?.drop();
  });

  async function runAt(companyId: number, now: string | Date, dryRun = false) {
    const ctx = handContext(db, { now: new Date(now), scope: { companyId }, config, dryRun });
    try {
      return await overdueRemindersJob.run(ctx);
    } finally {
      ctx.close();
    }
  }
  const remindersOf = (companyId: number) =>
    queryRows<ReminderRow>(
      db,
      sql`
    select appointment_id, hours_before, to_char(start_date_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"') as start,
           delivery::text, message_id, error
    from appointment_reminders where company_id = ${companyId} order by appointment_id, hours_before desc`,
    );
  const mailsTo = (addr: string) => sink.received.filter((m) => m.to.includes(addr));

  /** A company with an employee, a client and an appointment type. */
  async function setup(settings: unknown = {}, clientEmail: string | null = `c${Math.random().toString(36).slice(2)}@client.example`) {
    const c = await company(db, { name: 'Cabinet Lefèvre', settings });
    const employee = await user(db, c);
    const cl = await client(db, c, clientEmail, 'Jeanne Moreau');
    const type = await appointmentType(db, c, 'Bilan');
    return { c, employee, cl, type, email: clientEmail };
  }

  it('defect 36: sends the configured reminder once (company timezone, From MAIL_FROM with the company name) and creates the APPOINTMENT_REMINDER notification for the employee', async () => {
    const s = await setup({
      company_info: { email: 'contact@lefevre.example' },
      appointments: {
        reminder_relances: [
          {
            relance_number: 1,
            hours_before: 24,
            content: 'Bonjour {client_name}, rappel : rendez-vous le {date} à {time} chez {company_name}.',
          },
        ],
        include_reschedule_link_in_reminder: true,
        reschedule_base_url: 'https://rdv.lefevre.example/deplacer',
      },
    });
    // 2026-03-30 09:00 Paris (CEST, +2) = 07:00Z; the day before is still CET in part
    const a = await appointment(db, {
      companyId: s.c,
      clientId: s.cl,
      typeId: s.type,
      employeeId: s.employee,
      start: '2026-03-30T07:00:00Z',
    });
    const res1 = await runAt(s.c, '2026-03-29T06:00:00Z'); // 25 h ahead: not yet
    expect(mailsTo(s.email!)).toHaveLength(0);
    expect(res1.stats.reminders).toMatchObject({ sent: 0, candidates: 0 });
    const res2 = await runAt(s.c, '2026-03-29T07:30:00Z'); // 23.5 h ahead
    expect(res2.stats.reminders).toMatchObject({ sent: 1, notificationsCreated: 1 });
    await runAt(s.c, '2026-03-29T07:31:00Z');
    await runAt(s.c, '2026-03-30T06:59:00Z');
    await runAt(s.c, '2026-03-30T07:30:00Z'); // after the start
    const mails = mailsTo(s.email!);
    expect(mails).toHaveLength(1);
    const parsed = await simpleParser(mails[0].raw);
    expect(parsed.from?.value[0]).toEqual({ name: 'Cabinet Lefèvre', address: 'noreply@lokario.fr' });
    expect(parsed.replyTo?.value[0].address).toBe('contact@lefevre.example');
    expect(parsed.subject).toBe('Rappel : votre rendez-vous du 30/03/2026 à 09:00');
    expect(parsed.text).toContain('Bonjour Jeanne Moreau, rappel : rendez-vous le 30/03/2026 à 09:00 chez Cabinet Lefèvre.');
    expect(parsed.text).toContain(`Pour déplacer votre rendez-vous : https://rdv.lefevre.example/deplacer/${a}`);
    expect(parsed.messageId).toBe(`<lokario.appointment-reminder.${a}.24.${Date.parse('2026-03-30T07:00:00Z')}@lokario.fr>`);
    expect(await remindersOf(s.c)).toEqual([
      { appointment_id: a, hours_before: 24, start: '2026-03-30T07:00Z', delivery: 'sent', message_id: parsed.messageId, error: null },
    ]);
    const n = await notificationsOf(db, s.c, 'APPOINTMENT_REMINDER');
    expect(n).toHaveLength(1);
    expect(n[0]).toMatchObject({
      user_id: s.employee,
      source_type: 'appointment',
      source_id: a,
      title: 'Rappel de rendez-vous envoyé',
      message: 'Rappel envoyé à Jeanne Moreau pour le rendez-vous « Bilan » du 30/03/2026 à 09:00.',
      link_url: 'https://app.lokario.fr/app/appointments',
    });
  });

  it('defect 34: every configured offset is used, each once, with the default text when none is configured', async () => {
    const s = await setup({ appointments: { reminder_relances: [{ hours_before: 48 }, { hours_before: 2 }] } });
    const a = await appointment(db, { companyId: s.c, clientId: s.cl, typeId: s.type, start: '2026-10-26T09:00:00Z' }); // 10:00 CET
    await runAt(s.c, '2026-10-24T09:00:00Z'); // 48 h ahead (still CEST)
    await runAt(s.c, '2026-10-24T09:05:00Z');
    await runAt(s.c, '2026-10-26T07:00:00Z'); // 2 h ahead
    await runAt(s.c, '2026-10-26T07:01:00Z');
    const mails = mailsTo(s.email!);
    expect(mails).toHaveLength(2);
    for (const m of mails) {
      const p = await simpleParser(m.raw);
      expect(p.text).toContain('Bonjour Jeanne Moreau,');
      expect(p.text).toContain('Rappel : Vous avez un rendez-vous le 26/10/2026 à 10:00.');
    }
    expect((await remindersOf(s.c)).map((r) => [r.appointment_id, r.hours_before, r.delivery])).toEqual([
      [a, 48, 'sent'],
      [a, 2, 'sent'],
    ]);
    // no notification for the employee-less appointment is lost: it goes to the company (user_id null)
    expect((await notificationsOf(db, s.c, 'APPOINTMENT_REMINDER')).map((x) => x.user_id)).toEqual([null, null]);
  });

  it('no client email, reminders disabled, cancelled or completed: nothing sent, the reason counted', async () => {
    const noEmail = await setup({}, null);
    await appointment(db, { companyId: noEmail.c, clientId: noEmail.cl, typeId: noEmail.type, start: '2026-04-10T10:00:00Z' });
    const disabled = await setup({ appointments: { auto_reminder_enabled: false } });
    await appointment(db, { companyId: disabled.c, clientId: disabled.cl, typeId: disabled.type, start: '2026-04-10T10:00:00Z' });
    const cancelled = await setup();
    await appointment(db, {
      companyId: cancelled.c,
      clientId: cancelled.cl,
      typeId: cancelled.type,
      start: '2026-04-10T10:00:00Z',
      status: 'CANCELLED',
    });
    await appointment(db, {
      companyId: cancelled.c,
      clientId: cancelled.cl,
      typeId: cancelled.type,
      start: '2026-04-10T11:00:00Z',
      status: 'COMPLETED',
    });
    const before = sink.received.length;
    const now = '2026-04-09T12:00:00Z';
    expect((await runAt(noEmail.c, now)).stats.reminders).toMatchObject({ sent: 0, skipped: { no_client_email: 1 } });
    expect((await runAt(disabled.c, now)).stats.reminders).toMatchObject({ sent: 0, skipped: { reminders_disabled: 1 } });
    expect((await runAt(cancelled.c, now)).stats.reminders).toMatchObject({
      sent: 0,
      skipped: { appointment_cancelled: 1, appointment_not_active: 1 },
    });
    expect(sink.received.length).toBe(before);
    for (const s of [noEmail, disabled, cancelled]) expect(await remindersOf(s.c)).toEqual([]);
  });

  it('rescheduling re-arms the reminder; cancelling stops it', async () => {
    const s = await setup();
    const moved = await appointment(db, { companyId: s.c, clientId: s.cl, typeId: s.type, start: '2026-04-10T10:00:00Z' });
    const stopped = await appointment(db, { companyId: s.c, clientId: s.cl, typeId: s.type, start: '2026-04-10T15:00:00Z' });
    await runAt(s.c, '2026-04-09T10:00:00Z'); // the first one is due
    expect(mailsTo(s.email!)).toHaveLength(1);
    await db.execute(sql`update appointments set start_date_time = '2026-04-12T10:00:00Z' where id = ${moved}`);
    await db.execute(sql`update appointments set status = 'CANCELLED' where id = ${stopped}`);
    await runAt(s.c, '2026-04-09T16:00:00Z'); // the cancelled one would be due now
    await runAt(s.c, '2026-04-11T10:00:00Z'); // the moved one is due again
    await runAt(s.c, '2026-04-11T11:00:00Z');
    expect(mailsTo(s.email!)).toHaveLength(2);
    expect((await remindersOf(s.c)).map((r) => `${r.appointment_id}@${r.start}:${r.delivery}`).sort()).toEqual([
      `${moved}@2026-04-10T10:00Z:sent`,
      `${moved}@2026-04-12T10:00Z:sent`,
    ]);
  });

  it('SMTP 4xx: the claim is released and a later run sends it; 5xx: kept as failed, not retried; both reported', async () => {
    const s = await setup();
    const soft = await appointment(db, { companyId: s.c, clientId: s.cl, typeId: s.type, start: '2026-04-20T10:00:00Z' });
    sink.failNext(1, 451);
    const r1 = await runAt(s.c, '2026-04-19T12:00:00Z');
    expect(r1.stats.reminders).toMatchObject({ sent: 0, retryLater: 1 });
    expect(r1.errors).toEqual([expect.objectContaining({ scope: 'appointment_reminder', id: `${soft}:24`, code: 'smtp_temporary' })]);
    expect(await remindersOf(s.c)).toEqual([]);
    const r2 = await runAt(s.c, '2026-04-19T13:00:00Z');
    expect(r2.stats.reminders).toMatchObject({ sent: 1 });
    expect(mailsTo(s.email!)).toHaveLength(1);

    const hard = await setup();
    const bounced = await appointment(db, { companyId: hard.c, clientId: hard.cl, typeId: hard.type, start: '2026-04-20T10:00:00Z' });
    sink.failNext(1, 550);
    const r3 = await runAt(hard.c, '2026-04-19T12:00:00Z');
    expect(r3.stats.reminders).toMatchObject({ sent: 0, failed: 1 });
    const r4 = await runAt(hard.c, '2026-04-19T13:00:00Z');
    expect(r4.stats.reminders).toMatchObject({ sent: 0, skipped: { failed_permanently: 1 } });
    expect(mailsTo(hard.email!)).toHaveLength(0);
    expect(await remindersOf(hard.c)).toEqual([
      expect.objectContaining({ appointment_id: bounced, delivery: 'failed', error: expect.stringContaining('smtp_rejected') }),
    ]);
  });

  it('a claim stuck in `sending` past its lease becomes `unknown` and is never re-sent automatically', async () => {
    const s = await setup();
    const a = await appointment(db, { companyId: s.c, clientId: s.cl, typeId: s.type, start: '2026-04-20T10:00:00Z' });
    await db.execute(sql`insert into appointment_reminders (company_id, appointment_id, hours_before, start_date_time, claimed_at, delivery)
      values (${s.c}, ${a}, 24, '2026-04-20T10:00:00Z', now() - interval '1 hour', 'sending')`);
    const r = await runAt(s.c, '2026-04-19T12:00:00Z');
    expect(r.stats.reminders).toMatchObject({ markedUnknown: 1, unknown: 1, sent: 0 });
    await runAt(s.c, '2026-04-19T13:00:00Z');
    expect(mailsTo(s.email!)).toHaveLength(0);
    expect((await remindersOf(s.c))[0].delivery).toBe('unknown');
    // a fresh claim (a run sending right now) is left alone
    const b = await appointment(db, { companyId: s.c, clientId: s.cl, typeId: s.type, start: '2026-04-20T11:00:00Z' });
    await db.execute(sql`insert into appointment_reminders (company_id, appointment_id, hours_before, start_date_time, delivery)
      values (${s.c}, ${b}, 24, '2026-04-20T11:00:00Z', 'sending')`);
    expect((await runAt(s.c, '2026-04-19T13:30:00Z')).stats.reminders).toMatchObject({ markedUnknown: 0, inProgress: 1, sent: 0 });
  });

  it('the send window, evaluated by PostgreSQL at its edges: from start − offset, until (not including) the start', async () => {
    const s = await setup();
    const now = '2026-04-19T10:00:00.000Z';
    const at = (ms: number) => new Date(Date.parse(now) + ms).toISOString();
    const H = 3_600_000;
    const starts = { opens: at(24 * H), notYet: at(24 * H + 1), lastMoment: at(1), started: now, past: at(-1) };
    const ids = Object.fromEntries(
      await Promise.all(
        Object.entries(starts).map(
          async ([k, start]) => [k, await appointment(db, { companyId: s.c, clientId: s.cl, typeId: s.type, start })] as const,
        ),
      ),
    );
    const rows = await readReminderCandidates(db, {
      now: new Date(now),
      scope: { companyId: s.c },
      offsets: [{ company_id: s.c, hours_before: 24 }],
    });
    expect(rows.map((r) => r.appointment_id).sort((a, b) => a - b)).toEqual([ids.opens, ids.lastMoment].sort((a, b) => a - b));
  });

  it('dry run: the plan, nothing claimed, nothing sent', async () => {
    const s = await setup();
    const a = await appointment(db, { companyId: s.c, clientId: s.cl, typeId: s.type, start: '2026-04-20T10:00:00Z' });
    const res = await runAt(s.c, '2026-04-19T12:00:00Z', true);
    expect(res.plan).toEqual([expect.objectContaining({ part: 'reminders', action: 'send_reminder', appointmentId: a, hoursBefore: 24 })]);
    expect(mailsTo(s.email!)).toHaveLength(0);
    expect(await remindersOf(s.c)).toEqual([]);
    expect(await notificationsOf(db, s.c)).toEqual([]);
  });

  it('defect 34: frequency independence — a day of runs every minute and a day every 3 hours send the same reminders, once, before the start', async () => {
    // the same agenda in two companies; offsets 24 h and 3 h; rescheduling and cancelling at 08:00
    const agenda = [
      '2026-03-29T00:30:00Z',
      '2026-03-29T08:30:00Z',
      '2026-03-29T11:00:00Z',
      '2026-03-29T16:00:00Z',
      '2026-03-29T21:30:00Z',
      '2026-03-30T04:00:00Z',
    ];
    const settings = { appointments: { reminder_relances: [{ hours_before: 24 }, { hours_before: 3 }] } };
    async function simulate(stepMinutes: number) {
      const s = await setup(settings);
      const ids: number[] = [];
      for (const start of agenda) ids.push(await appointment(db, { companyId: s.c, clientId: s.cl, typeId: s.type, start }));
      const sentAt = new Map<string, Date>(); // Message-ID → simulated time it went out
      const dayStart = Date.parse('2026-03-29T00:00:00Z');
      let edited = false;
      for (let m = 0; m < 24 * 60; m += stepMinutes) {
        const now = new Date(dayStart + m * 60_000);
        if (!edited && m >= 8 * 60) {
          edited = true; // both simulations apply the same edits at the first run at or after 08:00
          await db.execute(sql`update appointments set start_date_time = '2026-03-29T20:00:00Z' where id = ${ids[2]}`);
          await db.execute(sql`update appointments set status = 'CANCELLED' where id = ${ids[3]}`);
        }
        const before = mailsTo(s.email!).length;
        await runAt(s.c, now);
        for (const mail of mailsTo(s.email!).slice(before)) sentAt.set(mail.messageId!, now);
      }
      const rows = await remindersOf(s.c);
      return { s, ids, rows, sentAt };
    }
    const minute = await simulate(1);
    const threeHourly = await simulate(180);
    const key = (sim: typeof minute) =>
      sim.rows.map((r) => `${sim.ids.indexOf(r.appointment_id)}@${r.start}/${r.hours_before}:${r.delivery}`).sort();
    expect(key(minute)).toEqual(key(threeHourly));
    expect(key(minute)).toEqual(
      [
        '0@2026-03-29T00:30Z/24:sent',
        '0@2026-03-29T00:30Z/3:sent',
        '1@2026-03-29T08:30Z/24:sent',
        '1@2026-03-29T08:30Z/3:sent',
        '2@2026-03-29T11:00Z/24:sent', // before the move
        '2@2026-03-29T20:00Z/24:sent',
        '2@2026-03-29T20:00Z/3:sent', // re-armed by the move
        '3@2026-03-29T16:00Z/24:sent', // cancelled before its 3 h reminder
        '4@2026-03-29T21:30Z/24:sent',
        '4@2026-03-29T21:30Z/3:sent',
        '5@2026-03-30T04:00Z/24:sent', // its 3 h reminder is due after the simulated day
      ].sort(),
    );
    for (const sim of [minute, threeHourly]) {
      expect(mailsTo(sim.s.email!)).toHaveLength(11);
      expect(new Set(mailsTo(sim.s.email!).map((m) => m.messageId)).size).toBe(11);
      for (const r of sim.rows) {
        const at = sim.sentAt.get(r.message_id!)!;
        expect(at.getTime()).toBeLessThan(Date.parse(r.start.replace('Z', ':00Z')));
      }
    }
  }, 300_000);

  it('10 simultaneous invocations: every reminder and every notification exactly once (with and without the lease)', async () => {
    const s = await setup();
    const ids: number[] = [];
    for (let i = 0; i < 40; i++) {
      ids.push(
        await appointment(db, {
          companyId: s.c,
          clientId: s.cl,
          typeId: s.type,
          employeeId: s.employee,
          start: new Date(Date.parse('2026-05-02T08:00:00Z') + i * 600_000).toISOString(),
        }),
      );
    }
    // the job function itself, no lease: claims and unique keys alone keep it exactly-once
    const results = await Promise.all(Array.from({ length: 10 }, () => runAt(s.c, '2026-05-01T20:00:00Z')));
    const sent = results.reduce((n, r) => n + (r.stats.reminders as { sent: number }).sent, 0);
    expect(sent).toBe(40);
    expect(mailsTo(s.email!)).toHaveLength(40);
    expect(new Set(mailsTo(s.email!).map((m) => m.messageId)).size).toBe(40);
    expect(await notificationsOf(db, s.c, 'APPOINTMENT_REMINDER')).toHaveLength(40);
    expect((await remindersOf(s.c)).every((r) => r.delivery === 'sent')).toBe(true);

    // through runJob: the lease lets one run, nine answer skipped; still nothing twice
    const more = await appointment(db, { companyId: s.c, clientId: s.cl, typeId: s.type, start: '2026-05-02T23:00:00Z' });
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24), SMTP_URL: sink.url, FRONTEND_URL: 'https://app.lokario.fr' }, t.handle);
    const params = { dryRun: false, scope: { companyId: s.c }, nowOverride: new Date('2026-05-02T00:00:00Z') };
    const viaRoute = await Promise.all(Array.from({ length: 10 }, () => runJob(overdueRemindersJob, 'http', params, rt)));
    expect(viaRoute.filter((r) => r.body.skipped === true)).toHaveLength(9);
    expect(viaRoute.find((r) => !r.body.skipped)!.body).toMatchObject({
      success: true,
      stats: { reminders: { sent: 1, alreadySent: 40 } },
    });
    expect(mailsTo(s.email!)).toHaveLength(41);
    expect((await remindersOf(s.c)).filter((r) => r.appointment_id === more)).toHaveLength(1);
  });
});
