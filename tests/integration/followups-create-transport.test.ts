import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { drizzle } from 'drizzle-orm/node-postgres';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { runJob } from '../../lib/cron/run.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import { encryptSecret } from '../../lib/crypto/fernet.js';
import { queryRows, type Db } from '../../db/client.js';
import * as schema from '../../db/schema/index.js';
import { followupHistory } from '../../db/schema/index.js';
import {
  addClient,
  addMailbox,
  decodeBody,
  followupRow,
  handContext,
  history,
  seedCompany,
  seedFollowup,
  seedInvoice,
  seedQuote,
  wipe,
} from './followups-fixtures.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';

const SECRET = 'x'.repeat(24);
const MASTER = 'demo-master-key-not-a-secret-0123456789';
const NOW = new Date('2026-03-11T10:00:00Z');
const ALL_WEEK = { start: '00:00', end: '23:59', weekdays: [1, 2, 3, 4, 5, 6, 7] };

describePg('followups: create phase, templates, transport, dry run', () => {
  let t: TestDatabase;
  let sink: Awaited<ReturnType<typeof startSmtpSink>>;
  let mailboxSink: Awaited<ReturnType<typeof startSmtpSink>>;
  beforeAll(async () => {
    t = await createTestDatabase('fu_create');
    sink = await startSmtpSink();
    mailboxSink = await startSmtpSink({ users: { 'facturation@atelier.example': 'app-password-1234' } });
  });
  afterAll(async () => {
    await sink?.close();
    await mailboxSink?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await wipe(t.handle.db);
    sink.received.length = 0;
    mailboxSink.received.length = 0;
  });

  const run = async (now: Date, opts: { dryRun?: boolean; env?: Record<string, string> } = {}) => {
    const { rt } = testRuntime({ CRON_SECRET: SECRET, SMTP_URL: sink.url, ENCRYPTION_MASTER_KEY: MASTER, ...opts.env }, t.handle);
    const res = await runJob(followupsJob, 'http', { dryRun: opts.dryRun ?? false, scope: {}, nowOverride: now }, rt);
    expect(httpStatusOf(res)).toBe(200);
    return res.body as { stats: Record<string, any>; errors: any[]; plan?: any[] };
  };
  const followupsOf = (db: Db) =>
    queryRows<{ source_type: string; type: string; due_date: string; status: string; source_label: string; amount: string }>(
      db,
      sql`select source_type, type::text, due_date, status::text, source_label, amount from followups order by source_type, source_id`,
    );

  it('defect 27: creates follow-ups with only the billing switch on (no `followups` settings object)', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db, { settings: { billing: { auto_followups: { invoices_enabled: true, quotes_enabled: true } } } });
    await seedInvoice(db, s, { dueDate: new Date('2026-03-20T09:00:00Z') });
    await seedQuote(db, s, { sentAt: new Date('2026-03-10T09:00:00Z') });
    const body = await run(NOW);
    expect(body.stats.created).toEqual({ invoices: 1, quotes: 1 });
    const rows = await followupsOf(db);
    expect(rows.map((r) => [r.source_type, r.type, new Date(r.due_date).toISOString(), r.status])).toEqual([
      ['invoice', 'FACTURE_IMPAYEE', '2026-03-27T09:00:00.000Z', 'A_FAIRE'],
      ['quote', 'DEVIS_NON_REPONDU', '2026-03-17T09:00:00.000Z', 'A_FAIRE'],
    ]);
    expect(rows[0].source_label).toMatch(/^Facture FAC-/);
  });

  it('the anchor of step 1 is the invoice due date, else its sending; neither → no follow-up yet (the SQL rule)', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    await seedInvoice(db, s, { dueDate: new Date('2026-03-20T09:00:00Z'), sentAt: new Date('2026-03-01T09:00:00Z') });
    await seedInvoice(db, s, { dueDate: null, sentAt: new Date('2026-03-05T09:00:00Z') });
    await seedInvoice(db, s, { dueDate: null, sentAt: null });
    const body = await run(NOW);
    expect(body.stats.created).toEqual({ invoices: 2 });
    expect((await followupsOf(db)).map((r) => new Date(r.due_date).toISOString())).toEqual([
      '2026-03-27T09:00:00.000Z',
      '2026-03-12T09:00:00.000Z',
    ]);
  });

  it('creates only for eligible sources: FACTURE with a balance, ENVOYE/VU unsigned unexpired quotes', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    const ok = await seedInvoice(db, s);
    await seedInvoice(db, s, { status: 'PAYEE' });
    await seedInvoice(db, s, { status: 'BROUILLON' });
    await seedInvoice(db, s, { invoiceType: 'AVOIR' });
    await seedInvoice(db, s, { deletedAt: new Date() });
    await seedInvoice(db, s, { archivedAt: new Date() });
    await seedInvoice(db, s, { totalTtc: '0.00' });
    await seedInvoice(db, s, { sentAt: null, dueDate: null }); // never sent, no due date: nothing to anchor on
    const vu = await seedQuote(db, s, { status: 'VU' });
    await seedQuote(db, s, { status: 'ACCEPTE' });
    await seedQuote(db, s, { clientSignaturePath: 'sig.png' });
    await seedQuote(db, s, { validUntil: new Date('2026-03-01T00:00:00Z') });
    await seedQuote(db, s, { deletedAt: new Date() });
    await seedQuote(db, s, { status: 'BROUILLON', sentAt: null });
    await run(NOW);
    const rows = await queryRows<{ source_type: string; source_id: number }>(
      db,
      sql`select source_type, source_id from followups order by source_type`,
    );
    expect(rows).toEqual([
      { source_type: 'invoice', source_id: ok },
      { source_type: 'quote', source_id: vu },
    ]);
  });

  it('companies with the switch off, or inactive, get nothing; one switch does not enable the other', async () => {
    const db = t.handle.db;
    const off = await seedCompany(db, { settings: {} });
    await seedInvoice(db, off);
    const quotesOnly = await seedCompany(db, { settings: { billing: { auto_followups: { quotes_enabled: true } } } });
    await seedInvoice(db, quotesOnly);
    await seedQuote(db, quotesOnly);
    const inactive = await seedCompany(db);
    await db.execute(sql`update companies set is_active = false where id = ${inactive.companyId}`);
    await seedInvoice(db, inactive);
    const body = await run(NOW);
    expect(body.stats.created).toEqual({ quotes: 1 });
  });

  it('defect 18: sent_at/due_date as timestamptz never crash the run; one bad settings blob never stops the others', async () => {
    const db = t.handle.db;
    const bad = await seedCompany(db, {
      settings: { billing: { auto_followups: { invoices_enabled: true } }, followups: { relance_delays: 'seven' } },
    });
    await seedInvoice(db, bad, { sentAt: new Date('2026-02-01T23:59:59.999Z'), dueDate: null });
    const good = await seedCompany(db);
    await seedInvoice(db, good, { dueDate: new Date('2026-02-01T00:00:00+05:00') });
    const body = await run(NOW);
    expect(body.stats.created).toEqual({ invoices: 2 });
    expect(body.errors).toEqual([expect.objectContaining({ scope: 'company', id: bad.companyId, code: 'settings_invalid' })]);
    expect(sink.received).toHaveLength(2); // both due: defaults apply to the bad blob's follow-ups section
  });

  it('idempotent creation: a second run creates nothing; defect 23: a follow-up the user deleted is not re-created', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    await seedInvoice(db, s, { dueDate: new Date('2026-03-20T09:00:00Z') });
    expect((await run(NOW)).stats.created).toEqual({ invoices: 1 });
    expect((await run(NOW)).stats.created).toEqual({});
    await db.execute(sql`delete from followups`);
    expect((await run(NOW)).stats.created).toEqual({});
    expect(await followupsOf(db)).toEqual([]);
  });

  it('defect 23: a signed quote closes its follow-up (FAIT) and keeps its history; nothing is deleted', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    const q = await seedQuote(db, s);
    const f = await seedFollowup(db, s, { sourceId: q, sourceType: 'quote', type: 'DEVIS_NON_REPONDU' });
    await db
      .insert(followupHistory)
      .values({ followupId: f, companyId: s.companyId, message: 'x', step: 1, delivery: 'sent', sentAt: new Date('2026-02-01T10:00:00Z') });
    await db.execute(sql`update quotes set client_signature_path = 'sig.png', status = 'ACCEPTE' where id = ${q}`);
    await run(NOW);
    expect((await followupRow(db, f)).status).toBe('FAIT');
    expect(await history(db, f)).toHaveLength(1);
  });

  it('defect 19: the company template is matched on its French label, with every variable filled', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db, {
      name: 'Atelier Dupont',
      clientName: 'Mme Martin',
      settings: {
        billing: { auto_followups: { invoices_enabled: true, quotes_enabled: true } },
        company_info: {
          email: 'contact@atelier.example',
          phone: '01 02 03 04 05',
          address: '3 rue des Lilas',
          city: 'Lyon',
          postal_code: '69001',
          siret: '12345678900011',
        },
        followups: {
          send_window: ALL_WEEK,
          messages: [
            {
              type: 'Facture impayée',
              method: 'email',
              subject: 'Votre facture {source_label}',
              content:
                'Bonjour {client_name}, reste dû {amount} (échéance {due_date}). {company_name}, {company_address} {company_postal_code} {company_city}, SIRET {company_siret}, {company_phone}. {mystery}',
            },
            { type: 'Devis non répondu', method: 'email', content: 'Signez ici : {signature_link}' },
          ],
        },
      },
    });
    const inv = await seedInvoice(db, s, { totalTtc: '1200.00', dueDate: new Date('2026-02-28T12:00:00Z') });
    await seedFollowup(db, s, { sourceId: inv, sourceLabel: 'Facture FAC-2026-0001' });
    const q = await seedQuote(db, s, { publicToken: 'abc123' });
    await seedFollowup(db, s, { sourceId: q, sourceType: 'quote', type: 'DEVIS_NON_REPONDU', sourceLabel: 'Devis DEV-1' });
    const body = await run(NOW);
    expect(sink.received).toHaveLength(2);
    const invoiceMail = sink.received.find((m) => /FAC-2026-0001/.test(m.raw))!;
    const text = decodeBody(invoiceMail.raw);
    expect(text).toContain(
      'Bonjour Mme Martin, reste dû 1\u00a0200,00\u00a0€ (échéance 28/02/2026). Atelier Dupont, 3 rue des Lilas 69001 Lyon, SIRET 12345678900011, 01 02 03 04 05.',
    );
    expect(text).toContain('{mystery}'); // left visible
    expect(body.stats.unknownTemplateVariables).toEqual({ mystery: 1 });
    const quoteMail = sink.received.find((m) => /Signez ici/.test(decodeBody(m.raw)))!;
    expect(decodeBody(quoteMail.raw)).toContain('Signez ici : http://localhost:3000/quote/abc123');
  });

  it('defect 25: platform transport — display name is the company, Reply-To the company address, proper subject', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db, {
      name: 'Plomberie Durand, Fils & Cie',
      settings: {
        billing: { auto_followups: { invoices_enabled: true } },
        company_info: { email: 'contact@durand.example' },
        followups: { send_window: ALL_WEEK },
      },
    });
    const inv = await seedInvoice(db, s);
    const f = await seedFollowup(db, s, { sourceId: inv, sourceLabel: 'Facture FAC-9' });
    // an unrelated recent conversation with the client must not lend its subject
    await db.insert(schema.conversations).values({
      companyId: s.companyId,
      clientId: s.clientId,
      subject: 'Photos du chantier',
      lastMessageAt: new Date('2026-03-10T10:00:00Z'),
    });
    await run(NOW, { env: { MAIL_FROM: 'Lokario <noreply@lokario.fr>' } });
    const m = sink.received[0];
    expect(m.from).toBe('noreply@lokario.fr');
    expect(m.header('From')).toBe('"Plomberie Durand, Fils & Cie" <noreply@lokario.fr>');
    expect(m.header('Reply-To')).toBe('contact@durand.example');
    expect(m.header('Subject')).toBe('Rappel de paiement : Facture FAC-9');
    expect(m.messageId).toBe(`<lokario.followup.${f}.1@lokario.fr>`);
    expect(m.header('Auto-Submitted')).toBe('auto-generated');
    // recorded after success, with the normalised Message-ID, in the client's conversation
    const msgs = await queryRows<{
      external_id: string;
      is_from_client: boolean;
      read: boolean;
      conversation_id: number;
      from_name: string;
    }>(db, sql`select external_id, is_from_client, read, conversation_id, from_name from inbox_messages`);
    expect(msgs).toEqual([
      expect.objectContaining({
        external_id: `lokario.followup.${f}.1@lokario.fr`,
        is_from_client: false,
        read: true,
        from_name: 'Plomberie Durand, Fils & Cie',
      }),
    ]);
    expect((await history(db, f))[0].conversation_id).toBe(msgs[0].conversation_id);
  });

  it('primary mailbox SMTP without STARTTLS: the mailbox password is never sent in clear, the try fails', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db, { name: 'Atelier Dupont' });
    await addMailbox(db, s.companyId, {
      emailAddress: 'facturation@atelier.example',
      emailPassword: encryptSecret('app-password-1234', MASTER),
      smtpServer: '127.0.0.1',
      smtpPort: mailboxSink.port,
      smtpUseSsl: false,
      imapServer: 'imap.atelier.example',
    });
    const inv = await seedInvoice(db, s);
    const f = await seedFollowup(db, s, { sourceId: inv });
    // the mailbox transport requires STARTTLS (never a password in clear); this sink has none, so
    // the run must refuse to log in rather than fall back to plain text
    const body = await run(NOW);
    expect(mailboxSink.received).toHaveLength(0);
    expect(sink.received).toHaveLength(0);
    expect(body.stats.failedTries).toBe(1);
    expect((await history(db, f))[0]).toEqual(expect.objectContaining({ delivery: 'failed' }));
  });

  it('primary mailbox SMTP (STARTTLS) with a Fernet-encrypted password: From is the mailbox, display name the company', async () => {
    const db = t.handle.db;
    const received: { from: string; user: string | undefined; raw: string }[] = [];
    // a real SMTP server offering STARTTLS with smtp-server's built-in self-signed certificate
    const tlsServer = new SMTPServer({
      authMethods: ['PLAIN', 'LOGIN'],
      logger: false,
      onAuth(auth, _s, cb) {
        if (auth.username === 'facturation@atelier.example' && auth.password === 'app-password-1234') cb(null, { user: auth.username });
        else cb(new Error('Invalid username or password'));
      },
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          received.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            user: session.user as string | undefined,
            raw: Buffer.concat(chunks).toString('utf8'),
          });
          cb();
        });
      },
    });
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', () => r()));
    const port = (tlsServer.server.address() as AddressInfo).port;
    const previous = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test certificate is self-signed
    try {
      const s = await seedCompany(db, { name: 'Atelier Dupont' });
      await addMailbox(db, s.companyId, {
        emailAddress: 'facturation@atelier.example',
        emailPassword: encryptSecret('app-password-1234', MASTER),
        smtpServer: '127.0.0.1',
        smtpPort: port,
        smtpUseSsl: false,
      });
      const inv = await seedInvoice(db, s);
      const f = await seedFollowup(db, s, { sourceId: inv });
      const body = await run(NOW);
      expect(body.stats.via).toEqual({ mailbox: 1 });
      expect(received).toHaveLength(1);
      expect(received[0].user).toBe('facturation@atelier.example');
      expect(received[0].from).toBe('facturation@atelier.example');
      expect(received[0].raw).toMatch(/^From: "?Atelier Dupont"? <facturation@atelier\.example>/m);
      expect(received[0].raw).toMatch(new RegExp(`^Message-ID: <lokario\\.followup\\.${f}\\.1@atelier\\.example>`, 'mi'));
      expect(sink.received).toHaveLength(0);
    } finally {
      if (previous === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = previous;
      await new Promise<void>((r) => tlsServer.close(() => r()));
    }
  });

  it('a mailbox password that does not decrypt is never used: the follow-up waits, the company is reported', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db);
    await addMailbox(db, s.companyId, {
      emailAddress: 'facturation@atelier.example',
      emailPassword: encryptSecret('app-password-1234', 'another-key'),
      smtpServer: '127.0.0.1',
      smtpPort: mailboxSink.port,
      smtpUseSsl: false,
    });
    const inv = await seedInvoice(db, s);
    await seedFollowup(db, s, { sourceId: inv });
    const body = await run(NOW);
    expect(body.stats.waiting).toEqual({ mailbox_credentials: 1 });
    expect(body.errors).toEqual([expect.objectContaining({ code: 'mailbox_credentials', id: s.companyId })]);
    expect(mailboxSink.received).toHaveLength(0);
    expect(await history(db)).toEqual([]);
  });

  it('dry run: returns the would-send list (including follow-ups it would create) and writes nothing', async () => {
    const db = t.handle.db;
    const s = await seedCompany(db, { name: 'Atelier Dupont' });
    await seedInvoice(db, s, { dueDate: new Date('2026-02-01T09:00:00Z') }); // would be created, and due
    const inv = await seedInvoice(db, s);
    await seedFollowup(db, s, { sourceId: inv, sourceLabel: 'Facture FAC-1' });
    const paid = await seedInvoice(db, s, { status: 'PAYEE' });
    await seedFollowup(db, s, { sourceId: paid });
    const before = await queryRows(db, sql`select id, status::text, due_date from followups order by id`);
    const body = await run(NOW, { dryRun: true });
    expect(body.stats.wouldSend).toBe(2);
    expect(body.stats.wouldCreate).toEqual({ invoices: 1 });
    expect(body.stats.stopped).toEqual({ invoice_paid: 1 });
    expect(body.plan).toHaveLength(2);
    expect(body.plan![0]).toEqual(
      expect.objectContaining({
        company: 'Atelier Dupont',
        source: 'Facture FAC-1',
        step: 1,
        subject: 'Rappel de paiement : Facture FAC-1',
      }),
    );
    expect(body.plan![0].clientEmail).toMatch(/^c\*\*\*@/);
    expect(body.plan![1].followupId).toBeNull();
    expect(sink.received).toHaveLength(0);
    expect(await queryRows(db, sql`select id, status::text, due_date from followups order by id`)).toEqual(before);
    expect(await history(db)).toEqual([]);
    expect(await queryRows(db, sql`select * from followup_creations`)).toEqual([]);
  });

  it('scope: companyId= restricts creation and sending to that company', async () => {
    const db = t.handle.db;
    const a = await seedCompany(db);
    const b = await seedCompany(db);
    await seedInvoice(db, a, { dueDate: new Date('2026-02-01T09:00:00Z') });
    await seedInvoice(db, b, { dueDate: new Date('2026-02-01T09:00:00Z') });
    const { rt } = testRuntime({ CRON_SECRET: SECRET, SMTP_URL: sink.url }, t.handle);
    await runJob(followupsJob, 'http', { dryRun: false, scope: { companyId: b.companyId }, nowOverride: NOW }, rt);
    const rows = await queryRows<{ company_id: number }>(db, sql`select company_id from followups`);
    expect(rows).toEqual([{ company_id: b.companyId }]);
    expect(sink.received).toHaveLength(1);
  });

  it('defect 26: the number of statements per batch does not grow with the number of follow-ups', async () => {
    const statementsFor = async (n: number) => {
      await wipe(t.handle.db);
      for (let c = 0; c < 2; c++) {
        const s = await seedCompany(t.handle.db, { plan: 'STARTER' });
        for (let i = 0; i < n; i++) {
          const client = await addClient(t.handle.db, s.companyId);
          const inv = await seedInvoice(t.handle.db, { ...s, clientId: client });
          await seedFollowup(t.handle.db, { ...s, clientId: client }, { sourceId: inv });
        }
      }
      const pool = new pg.Pool({ connectionString: t.url, max: 4 });
      let statements = 0;
      let recordStatements = 0;
      let handoverStatements = 0;
      // every statement goes through a pooled client's query(), also those sent with pool.query()
      pool.on('connect', (client) => {
        const q = client.query.bind(client);
        client.query = ((...args: unknown[]) => {
          statements++;
          const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string } | undefined)?.text ?? '');
          // the statement that records accepted sends is the only one writing inbox_messages
          if (/insert into inbox_messages/.test(text)) recordStatements++;
          // so is the hand-over to SMTP (lib/mail/claimed-send.ts): grouped, at most one per email
          if (/set handed_at = now\(\)/.test(text)) handoverStatements++;
          return (q as (...a: unknown[]) => unknown)(...args);
        }) as typeof client.query;
      });
      const db = drizzle({ client: pool, schema }) as unknown as Db;
      const res = await followupsJob.run(handContext(db, { SMTP_URL: sink.url }, NOW));
      await pool.end();
      return { statements, recordStatements, handoverStatements, sent: res.stats.sent as number };
    };
    const small = await statementsFor(2);
    const large = await statementsFor(9);
    expect(small.sent).toBe(4);
    expect(large.sent).toBe(18);
    // everything but recording accepted sends is per batch: the same count for 4 or 18 emails
    const perBatch = (r: typeof small) => r.statements - r.recordStatements - r.handoverStatements;
    expect(perBatch(large)).toBe(perBatch(small));
    // accepted sends are recorded, and handed over, in groups: at least one statement, at most one
    // per email (how many depends on how the SMTP answers interleave with the database's)
    for (const r of [small, large]) {
      expect(r.recordStatements).toBeGreaterThanOrEqual(1);
      expect(r.recordStatements).toBeLessThanOrEqual(r.sent);
      expect(r.handoverStatements).toBeGreaterThanOrEqual(1);
      expect(r.handoverStatements).toBeLessThanOrEqual(r.sent);
    }
  });
});
