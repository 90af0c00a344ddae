import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { runJob } from '../../lib/cron/run.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import { queryRows } from '../../db/client.js';
import { followupHistory } from '../../db/schema/index.js';
import {
  addInboundMessage,
  addPayment,
  decodeBody,
  followupRow,
  history,
  seedCompany,
  seedFollowup,
  seedInvoice,
  seedQuote,
  wipe,
} from './followups-fixtures.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';

/**
 * The rules of SPEC §5.2 end to end: real PostgreSQL, a real SMTP server counting what it
 * receives, whole runs through runJob with `now` moved by the test.
 */
describePg('followups: delays, stop conditions, send window, quota, channel', () => {
  let t: TestDatabase;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  beforeAll(async () => {
    t = await createTestDatabase('fu_rules');
    sink = await startSmtpSink();
  });
  afterAll(async () => {
    await sink?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await wipe(t.handle.db);
    sink.received.length = 0;
  });

  const run = async (now: string, extra: { dryRun?: boolean } = {}) => {
    const { rt } = testRuntime({ CRON_SECRET: 'x'.repeat(24), SMTP_URL: sink.url }, t.handle);
    const res = await runJob(followupsJob, 'http', { dryRun: extra.dryRun ?? false, scope: {}, nowOverride: new Date(now) }, rt);
    expect(httpStatusOf(res)).toBe(200);
    return res.body as { stats: Record<string, any>; errors: unknown[]; plan?: any[]; partial: boolean };
  };

  it('defect 20: with delays [7,14,21] and an invoice due on D, steps go out at D+7, D+21, D+42, then FAIT', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    // D = Wednesday 4 March 2026, 10:00 in Paris; the steps cross the switch to summer time
    const invoiceId = await seedInvoice(db, s, { dueDate: new Date('2026-03-04T09:00:00Z'), sentAt: new Date('2026-02-02T09:00:00Z') });

    const r0 = await run('2026-03-10T09:00:00Z'); // D+6
    expect(r0.stats.created).toEqual({ invoices: 1 });
    expect(sink.received).toHaveLength(0);
    const [f] = await queryRows<{ id: number; due_date: string }>(
      db,
      sql`select id, due_date from followups where source_id = ${invoiceId}`,
    );
    expect(new Date(f.due_date).toISOString()).toBe('2026-03-11T09:00:00.000Z'); // D+7, 10:00 Paris

    await run('2026-03-11T09:00:00Z'); // D+7: step 1 (the original waited until about D+14)
    expect(sink.received).toHaveLength(1);
    expect((await followupRow(db, f.id)).due_date.toISOString()).toBe('2026-03-25T09:00:00.000Z'); // +14 days

    await run('2026-03-18T09:00:00Z'); // D+14: nothing
    await run('2026-03-24T09:00:00Z');
    expect(sink.received).toHaveLength(1);

    await run('2026-03-25T09:00:00Z'); // D+21: step 2
    expect(sink.received).toHaveLength(2);
    // 21 days later at 10:00 Paris, which is 08:00 UTC after the switch to summer time
    expect((await followupRow(db, f.id)).due_date.toISOString()).toBe('2026-04-15T08:00:00.000Z');

    await run('2026-04-15T08:00:00Z'); // D+42: step 3, the last
    expect(sink.received).toHaveLength(3);
    expect((await followupRow(db, f.id)).status).toBe('FAIT');

    await run('2026-06-15T08:00:00Z');
    expect(sink.received).toHaveLength(3);
    const h = await history(db, f.id);
    expect(h.map((x) => [x.step, x.delivery])).toEqual([
      [1, 'sent'],
      [2, 'sent'],
      [3, 'sent'],
    ]);
    // each step has its own deterministic Message-ID, and step 2 threads under step 1
    expect(new Set(sink.received.map((m) => m.messageId)).size).toBe(3);
    expect(sink.received[1].header('In-Reply-To')).toBe(sink.received[0].messageId);
  });

  it('a quote follow-up: step 1 is relance_delays[0] days after the quote was sent', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    await seedQuote(db, s, { sentAt: new Date('2026-03-02T10:00:00Z') });
    await run('2026-03-08T10:00:00Z');
    expect(sink.received).toHaveLength(0);
    await run('2026-03-09T10:00:00Z');
    expect(sink.received).toHaveLength(1);
    expect(sink.received[0].raw).toContain('Devis DEV-');
  });

  // Each stop condition of SPEC §5.2.2: the follow-up is due, the source changed, nothing is sent
  // and the follow-up is closed (FAIT) with the reason counted.
  type Case = { name: string; reason: string; setup: (db: TestDatabase['handle']['db']) => Promise<void> };
  const NOW = '2026-03-11T10:00:00Z';
  const invoiceCase = (
    name: string,
    reason: string,
    patch: (db: TestDatabase['handle']['db'], s: Awaited<ReturnType<typeof seedCompany>>, invoiceId: number) => Promise<void>,
  ): Case => ({
    name,
    reason,
    async setup(db) {
      const s = await seedCompany(db);
      const invoiceId = await seedInvoice(db, s);
      await seedFollowup(db, s, { sourceId: invoiceId });
      await patch(db, s, invoiceId);
    },
  });
  const quoteCase = (name: string, reason: string, patch: (db: TestDatabase['handle']['db'], quoteId: number) => Promise<void>): Case => ({
    name,
    reason,
    async setup(db) {
      const s = await seedCompany(db);
      const quoteId = await seedQuote(db, s);
      await seedFollowup(db, s, { sourceId: quoteId, sourceType: 'quote', type: 'DEVIS_NON_REPONDU' });
      await patch(db, quoteId);
    },
  });
  const cases: Case[] = [
    invoiceCase('invoice marked PAYEE', 'invoice_paid', (db, _s, id) =>
      db.execute(sql`update invoices set status = 'PAYEE' where id = ${id}`).then(() => {}),
    ),
    invoiceCase('partial payments that bring the balance to zero', 'invoice_paid', async (db, _s, id) => {
      await addPayment(db, id, '700.00');
      await addPayment(db, id, '500.00');
    }),
    invoiceCase('invoice ANNULEE', 'invoice_cancelled', (db, _s, id) =>
      db.execute(sql`update invoices set status = 'ANNULEE' where id = ${id}`).then(() => {}),
    ),
    invoiceCase('invoice turned into an AVOIR (credit note)', 'credit_note', (db, _s, id) =>
      db.execute(sql`update invoices set invoice_type = 'AVOIR' where id = ${id}`).then(() => {}),
    ),
    invoiceCase('soft-deleted invoice', 'source_deleted', (db, _s, id) =>
      db.execute(sql`update invoices set deleted_at = now() where id = ${id}`).then(() => {}),
    ),
    invoiceCase('archived invoice', 'source_archived', (db, _s, id) =>
      db.execute(sql`update invoices set archived_at = now() where id = ${id}`).then(() => {}),
    ),
    invoiceCase('invoice row gone (hard-deleted)', 'source_deleted', async (db, _s, id) => {
      await db.execute(sql`delete from invoices where id = ${id}`);
    }),
    invoiceCase('client replied after the last step (inbox_messages)', 'client_replied', async (db, s) => {
      await addInboundMessage(db, s, new Date('2026-03-01T10:00:00Z'));
    }),
    quoteCase('quote accepted', 'quote_accepted', (db, id) =>
      db.execute(sql`update quotes set status = 'ACCEPTE', accepted_at = now() where id = ${id}`).then(() => {}),
    ),
    quoteCase('quote signed (signature path set, status not updated)', 'quote_accepted', (db, id) =>
      db.execute(sql`update quotes set client_signature_path = 'sig/1.png' where id = ${id}`).then(() => {}),
    ),
    quoteCase('quote refused', 'quote_refused', (db, id) =>
      db.execute(sql`update quotes set status = 'REFUSE', refused_at = now() where id = ${id}`).then(() => {}),
    ),
    quoteCase('quote expired (valid_until passed)', 'quote_expired', (db, id) =>
      db.execute(sql`update quotes set valid_until = '2026-03-01T00:00:00Z' where id = ${id}`).then(() => {}),
    ),
    quoteCase('quote soft-deleted', 'source_deleted', (db, id) =>
      db.execute(sql`update quotes set deleted_at = now() where id = ${id}`).then(() => {}),
    ),
  ];
  for (const c of cases) {
    it(`stop condition: ${c.name} → FAIT (${c.reason}), nothing sent`, async () => {
      const db = t.handle.db;
      await c.setup(db);
      const body = await run(NOW);
      expect(sink.received).toHaveLength(0);
      expect(body.stats.stopped).toEqual({ [c.reason]: 1 });
      const rows = await queryRows<{ status: string }>(db, sql`select status::text from followups`);
      expect(rows).toEqual([{ status: 'FAIT' }]);
    });
  }

  it('an out-of-office from the client does not stop the dunning; a real reply does', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    const invoiceId = await seedInvoice(db, s);
    await seedFollowup(db, s, { sourceId: invoiceId });
    await addInboundMessage(db, s, new Date('2026-03-01T10:00:00Z'), 'auto_reply');
    const first = await run(NOW);
    expect(first.stats.stopped ?? {}).not.toHaveProperty('client_replied');
    expect(sink.received).toHaveLength(1);
    expect((await queryRows<{ status: string }>(db, sql`select status::text from followups`))[0]!.status).not.toBe('FAIT');
    // after the step just sent (its sent_at is the database clock)
    const [{ at }] = await queryRows<{ at: Date }>(db, sql`select max(sent_at) + interval '1 minute' as at from followup_history`);
    await addInboundMessage(db, s, new Date(at), 'person');
    const second = await run('2026-06-01T10:00:00Z');
    expect(second.stats.stopped).toEqual({ client_replied: 1 });
    expect(sink.received).toHaveLength(1);
  });

  it('max_relances reached (settings lowered after two steps) → FAIT without a third email', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db, {
      settings: {
        billing: { auto_followups: { invoices_enabled: true } },
        followups: { max_relances: 2, send_window: { start: '00:00', end: '23:59', weekdays: [1, 2, 3, 4, 5, 6, 7] } },
      },
    });
    const invoiceId = await seedInvoice(db, s);
    const f = await seedFollowup(db, s, { sourceId: invoiceId });
    for (const step of [1, 2]) {
      await db
        .insert(followupHistory)
        .values({ followupId: f, companyId: s.companyId, message: 'x', step, delivery: 'sent', sentAt: new Date('2026-02-01T10:00:00Z') });
    }
    const body = await run(NOW);
    expect(sink.received).toHaveLength(0);
    expect(body.stats.stopped).toEqual({ max_relances: 1 });
  });

  it('a client message from BEFORE the last step does not stop the next one', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    const invoiceId = await seedInvoice(db, s, { sentAt: new Date('2026-01-01T09:00:00Z') });
    const f = await seedFollowup(db, s, { sourceId: invoiceId });
    await addInboundMessage(db, s, new Date('2026-02-01T10:00:00Z'));
    await db
      .insert(followupHistory)
      .values({ followupId: f, companyId: s.companyId, message: 'x', step: 1, delivery: 'sent', sentAt: new Date('2026-02-10T10:00:00Z') });
    await run(NOW);
    expect(sink.received).toHaveLength(1);
  });

  it('stop_on_client_response=false: a reply does not stop the relances', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db, {
      settings: {
        billing: { auto_followups: { invoices_enabled: true } },
        followups: {
          stop_conditions: { stop_on_client_response: false },
          send_window: { start: '00:00', end: '23:59', weekdays: [1, 2, 3, 4, 5, 6, 7] },
        },
      },
    });
    const invoiceId = await seedInvoice(db, s);
    await seedFollowup(db, s, { sourceId: invoiceId });
    await addInboundMessage(db, s, new Date('2026-03-01T10:00:00Z'));
    await run(NOW);
    expect(sink.received).toHaveLength(1);
  });

  it('send window in Europe/Paris: not on Saturday, not at night, yes on Monday morning', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db, { settings: { billing: { auto_followups: { invoices_enabled: true } } } }); // default window 08:00–19:00 Mon–Fri
    const invoiceId = await seedInvoice(db, s);
    await seedFollowup(db, s, { sourceId: invoiceId });
    const sat = await run('2026-03-14T10:00:00Z'); // Saturday 11:00 Paris
    expect(sat.stats.waiting).toEqual({ outside_send_window: 1 });
    const night = await run('2026-03-16T18:30:00Z'); // Monday 19:30 Paris
    expect(night.stats.waiting).toEqual({ outside_send_window: 1 });
    const early = await run('2026-03-17T06:59:00Z'); // Tuesday 07:59 Paris
    expect(early.stats.waiting).toEqual({ outside_send_window: 1 });
    expect(sink.received).toHaveLength(0);
    await run('2026-03-17T07:00:00Z'); // Tuesday 08:00 Paris
    expect(sink.received).toHaveLength(1);
  });

  it('STARTER quota: 20 sends per calendar month (manual ones count), the 21st waits for next month', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db, { plan: 'STARTER' });
    // a manual relance sent this month counts (no step, no delivery state: the app's own rows)
    const manualInvoice = await seedInvoice(db, s);
    const manual = await seedFollowup(db, s, { sourceId: manualInvoice, status: 'FAIT' });
    await db
      .insert(followupHistory)
      .values({ followupId: manual, companyId: s.companyId, message: 'manuel', sentAt: new Date('2026-03-02T10:00:00Z') });
    for (let i = 0; i < 21; i++) {
      const inv = await seedInvoice(db, s);
      await seedFollowup(db, s, { sourceId: inv, dueDate: new Date(Date.UTC(2026, 0, 1, 0, i)) });
    }
    const body = await run('2026-03-20T10:00:00Z');
    expect(sink.received).toHaveLength(19);
    expect(body.stats.waiting).toEqual({ quota_exceeded: 2 });
    const again = await run('2026-03-27T10:00:00Z');
    expect(again.stats.waiting).toEqual({ quota_exceeded: 2 });
    expect(sink.received).toHaveLength(19);
    await run('2026-04-01T08:00:00Z'); // 1 April 10:00 in Paris: a new month
    expect(sink.received).toHaveLength(21);
  });

  it("the quota month is the company's: 31 March 23:30 in Paris (UTC is already... not) vs 1 April 00:30", async () => {
    const db = t.handle.db;
    const s = await seedCompany(db, { plan: null }); // no subscription row = STARTER
    for (let i = 0; i < 20; i++) {
      const inv = await seedInvoice(db, s);
      const f = await seedFollowup(db, s, { sourceId: inv, status: 'FAIT' });
      await db.insert(followupHistory).values({
        followupId: f,
        companyId: s.companyId,
        message: 'x',
        step: 1,
        delivery: 'sent',
        sentAt: new Date('2026-03-31T21:00:00Z'),
      }); // 23:00 Paris, 31 March
    }
    const inv = await seedInvoice(db, s);
    await seedFollowup(db, s, { sourceId: inv });
    const before = await run('2026-03-31T21:30:00Z'); // 23:30 Paris, still March
    expect(before.stats.waiting).toEqual({ quota_exceeded: 1 });
    await run('2026-03-31T22:30:00Z'); // 00:30 Paris on 1 April (still March in UTC)
    expect(sink.received).toHaveLength(1);
  });

  it('channel_unsupported: a template whose method is sms is skipped, nothing sent, the follow-up stays', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db, {
      settings: {
        billing: { auto_followups: { invoices_enabled: true } },
        followups: {
          messages: [{ type: 'Facture impayée', content: 'SMS {client_name}', method: 'sms' }],
          send_window: { start: '00:00', end: '23:59', weekdays: [1, 2, 3, 4, 5, 6, 7] },
        },
      },
    });
    const invoiceId = await seedInvoice(db, s);
    const f = await seedFollowup(db, s, { sourceId: invoiceId });
    const body = await run(NOW);
    expect(body.stats.waiting).toEqual({ channel_unsupported: 1 });
    expect(sink.received).toHaveLength(0);
    expect((await followupRow(db, f)).status).toBe('A_FAIRE');
    expect(await history(db, f)).toEqual([]);
  });

  it('a client without an email address waits (no_client_email), nothing sent', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db, { clientEmail: null });
    const invoiceId = await seedInvoice(db, s);
    await seedFollowup(db, s, { sourceId: invoiceId });
    const body = await run(NOW);
    expect(body.stats.waiting).toEqual({ no_client_email: 1 });
    expect(sink.received).toHaveLength(0);
  });

  it('defect 21: EN_ATTENTE (on hold) and not-auto follow-ups are never sent', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    const a = await seedInvoice(db, s);
    const b = await seedInvoice(db, s);
    await seedFollowup(db, s, { sourceId: a, status: 'EN_ATTENTE' });
    await seedFollowup(db, s, { sourceId: b, autoEnabled: false });
    const body = await run(NOW);
    expect(body.stats.due).toBe(0);
    expect(sink.received).toHaveLength(0);
  });

  it('defect 21/34: RAPPEL_RDV (appointment reminders) and manual types are never sent by this job', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    await seedFollowup(db, s, { sourceId: 1, sourceType: 'appointment', type: 'RAPPEL_RDV' });
    await seedFollowup(db, s, { sourceId: 2, sourceType: 'manual', type: 'INFO_MANQUANTE' });
    const body = await run(NOW);
    expect(body.stats.due).toBe(0);
    expect(sink.received).toHaveLength(0);
  });

  it('defect 21: the amount is the current balance after partial payments, in French money', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    const invoiceId = await seedInvoice(db, s, { totalTtc: '1500.00' });
    await addPayment(db, invoiceId, '300.00');
    await seedFollowup(db, s, { sourceId: invoiceId, amount: '1500.00' });
    await run(NOW);
    expect(sink.received).toHaveLength(1);
    const text = decodeBody(sink.received[0].raw);
    expect(text).toContain('1\u00a0200,00\u00a0€');
    expect(text).not.toContain('1500');
  });
});
