import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { simpleParser } from 'mailparser';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { runJob } from '../../lib/cron/run.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import type { Job } from '../../lib/cron/types.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';
import { queryRows } from '../../db/client.js';
import { seedCompany, seedFollowup, seedInvoice, wipe } from './followups-fixtures.js';
import { appointment, appointmentType, client, company, invoice } from './overdue-fixtures.js';
import { httpStatusOf, type RunOutcome } from '../../lib/cron/outcome.js';

const WINDOW = { start: '00:00', end: '23:59', weekdays: [1, 2, 3, 4, 5, 6, 7] };
const ON = { auto_followups: { invoices_enabled: true, quotes_enabled: true } };

/** Zones luxon accepts but PostgreSQL does not know by that name, and plain nonsense. */
const BAD_ZONES: unknown[] = ['local', 'system', 'UTC+5', 'europe/paris', 'Mars/Olympus', 42, ['Europe/Paris'], 'Europe/Paris '];

/** Every other setting made wrong, section by section, and blobs that are not objects at all. */
const BAD_SETTINGS: unknown[] = [
  { billing: ON, company_info: { timezone: 'local', email: 5, phone: ['x'] }, followups: { send_window: WINDOW } },
  {
    billing: ON,
    company_info: { timezone: 'system' },
    followups: {
      max_relances: 'many',
      relance_delays: [-1, 'x', 1e9],
      messages: 'hello',
      stop_conditions: 7,
      send_window: { start: '25:99', end: null, weekdays: [0, 9] },
    },
    appointments: {
      auto_reminder_enabled: 'yes',
      reminder_relances: [{ hours_before: 1e9 }, { hours_before: -5 }, 'x'],
      reschedule_base_url: 5,
    },
    clients: { blocked_client_domains: 'x' },
  },
  { billing: { auto_followups: { invoices_enabled: 'true', quotes_enabled: 1 } }, company_info: 'Europe/Paris', followups: [] },
  { billing: 'on', followups: { relance_delays: [], max_relances: 0, messages: [{ type: 5 }] } },
  'not an object',
  [1, 2, 3],
  42,
  true,
];

/**
 * A tenant's bad data never fails the others (docs/security.md): one run over many companies,
 * one of which has each bad value; the good company's email still goes out, every bad company is
 * an item error. Real PostgreSQL, real SMTP (smtp-server).
 */
describePg('tenant isolation: bad zones and settings of one company never fail the others', () => {
  let t: TestDatabase;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  beforeAll(async () => {
    t = await createTestDatabase('tenants');
    sink = await startSmtpSink();
  });
  afterAll(async () => {
    await sink?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await wipe(t.handle.db);
    await t.handle.db.execute(sql`truncate appointments, appointment_types, appointment_reminders, tasks, users restart identity cascade`);
    sink.received.length = 0;
  });

  const run = async (job: Job, now: string) => {
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24), SMTP_URL: sink.url }, t.handle);
    const res = await runJob(job, 'http', { dryRun: false, scope: {}, nowOverride: new Date(now) }, rt);
    return res as RunOutcome & {
      body: { stats: Record<string, any>; errors: { scope: string; id: unknown; code: string; message: string }[] };
    };
  };

  it('follow-ups: created and sent for the good company whatever the others hold; each bad company is a settings_invalid item', async () => {
    const db = t.handle.db;
    const good = await seedCompany(db, { clientEmail: 'bon@client.example' });
    await seedInvoice(db, good); // the create phase (one statement for every company) makes its follow-up
    const bad: number[] = [];
    for (const settings of [
      ...BAD_ZONES.map((timezone) => ({ billing: ON, company_info: { timezone }, followups: { send_window: WINDOW } })),
      ...BAD_SETTINGS,
    ]) {
      const s = await seedCompany(db, { settings: settings as Record<string, unknown> });
      await seedInvoice(db, s);
      await seedFollowup(db, s, { sourceId: await seedInvoice(db, s) });
      bad.push(s.companyId);
    }
    const res = await run(followupsJob, '2026-03-10T09:00:00Z');
    expect(httpStatusOf(res)).toBe(200);
    expect(sink.received.filter((m) => m.to.includes('bon@client.example'))).toHaveLength(1);
    const flagged = res.body.errors.filter((e) => e.scope === 'company' && e.code === 'settings_invalid').map((e) => e.id);
    expect(new Set(flagged)).toEqual(new Set(bad));
    for (const e of res.body.errors.filter((x) => bad.slice(0, BAD_ZONES.length).includes(x.id as number))) {
      expect(e.message).toMatch(/company_info\.timezone/);
    }
    // the follow-ups of the zone companies were created in Europe/Paris (the default), not skipped
    const created = await queryRows<{ n: number }>(
      db,
      sql`select count(*)::int as n from followups where company_id = any(${`{${bad.slice(0, BAD_ZONES.length).join(',')}}`}::int[]) and source_id is not null`,
    );
    expect(created[0].n).toBe(2 * BAD_ZONES.length);
  });

  it('overdue-reminders: the good company gets its reminder and notification; bad zones are invalid_timezone items', async () => {
    const db = t.handle.db;
    const mk = async (settings: unknown, email: string) => {
      const c = await company(db, { settings });
      const type = await appointmentType(db, c);
      await appointment(db, { companyId: c, clientId: await client(db, c, email), typeId: type, start: '2026-03-11T08:00:00Z' });
      await invoice(db, c, { due: '2026-03-01T10:00:00Z' });
      return c;
    };
    const good = await mk({}, 'bon@client.example');
    const zoneCompanies: number[] = [];
    for (const [i, timezone] of BAD_ZONES.entries()) zoneCompanies.push(await mk({ company_info: { timezone } }, `z${i}@client.example`));
    const settingsCompanies: number[] = [];
    for (const [i, settings] of BAD_SETTINGS.entries()) settingsCompanies.push(await mk(settings, `s${i}@client.example`));

    const res = await run(overdueRemindersJob, '2026-03-10T12:00:00Z');
    expect(httpStatusOf(res)).toBe(200);
    const toGood = sink.received.filter((m) => m.to.includes('bon@client.example'));
    expect(toGood).toHaveLength(1);
    const notes = await queryRows<{ company_id: number }>(db, sql`select company_id from notifications where type = 'INVOICE_OVERDUE'`);
    expect(notes.map((n) => n.company_id)).toContain(good);
    expect(notes.length).toBeGreaterThanOrEqual(1 + BAD_ZONES.length);
    const zoneErrors = res.body.errors.filter((e) => e.code === 'invalid_timezone').map((e) => e.id);
    // the first two BAD_SETTINGS hold "local" and "system"
    expect(new Set(zoneErrors)).toEqual(new Set([...zoneCompanies, ...settingsCompanies.slice(0, 2)]));
    // a bad zone falls back to Europe/Paris on both sides: 08:00Z is 09:00 in Paris in March
    const z0 = sink.received.find((m) => m.to.includes('z0@client.example'));
    expect((await simpleParser(z0!.raw)).subject).toBe('Rappel : votre rendez-vous du 11/03/2026 à 09:00');
  });
});
