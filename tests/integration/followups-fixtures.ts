/** Seeding helpers for the follow-ups integration tests (real PostgreSQL). */
import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import {
  clients,
  companies,
  conversations,
  followupHistory,
  followups,
  inboxIntegrations,
  inboxMessages,
  invoicePayments,
  invoices,
  quotes,
  subscriptions,
} from '../../db/schema/index.js';
import { createMailFactory } from '../../lib/mail/transport.js';
import { parseConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import type { JobContext } from '../../lib/cron/types.js';
import { insertClient, insertCompany, insertCompanySettings, insertSubscription } from '../helpers/seed.js';

let seq = 0;

export type SeedCompany = { companyId: number; clientId: number };

/** A company with its settings (auto follow-ups on by default), a plan and one client. */
export async function seedCompany(
  db: Db,
  opts: {
    name?: string;
    settings?: Record<string, unknown>;
    plan?: 'STARTER' | 'PROFESSIONAL' | 'ENTERPRISE' | null;
    clientEmail?: string | null;
    clientName?: string;
  } = {},
): Promise<SeedCompany> {
  const n = ++seq;
  const companyId = await insertCompany(db, { name: opts.name ?? `Société ${n}` });
  await insertCompanySettings(
    db,
    companyId,
    opts.settings ?? {
      billing: { auto_followups: { invoices_enabled: true, quotes_enabled: true } },
      company_info: { email: `contact${n}@societe.example`, phone: '01 23 45 67 89' },
      followups: { send_window: { start: '00:00', end: '23:59', weekdays: [1, 2, 3, 4, 5, 6, 7] } },
    },
  );
  if (opts.plan !== null) await insertSubscription(db, companyId, { plan: opts.plan ?? 'PROFESSIONAL', status: 'ACTIVE' });
  const clientId = await insertClient(db, companyId, {
    name: opts.clientName ?? `Client ${n}`,
    email: opts.clientEmail === undefined ? `client${n}@client.example` : opts.clientEmail,
  });
  return { companyId, clientId };
}

export async function addClient(db: Db, companyId: number, email: string | null = null) {
  const n = ++seq;
  return insertClient(db, companyId, { name: `Client ${n}`, email: email ?? `client${n}@client.example` });
}

export async function seedInvoice(db: Db, s: SeedCompany, opts: Partial<typeof invoices.$inferInsert> = {}) {
  const [i] = await db
    .insert(invoices)
    .values({
      companyId: s.companyId,
      clientId: s.clientId,
      number: `FAC-${++seq}`,
      status: 'ENVOYEE',
      totalTtc: '1200.00',
      sentAt: new Date('2026-01-01T09:00:00Z'),
      ...opts,
    })
    .returning();
  return i.id;
}

export async function seedQuote(db: Db, s: SeedCompany, opts: Partial<typeof quotes.$inferInsert> = {}) {
  const [q] = await db
    .insert(quotes)
    .values({
      companyId: s.companyId,
      clientId: s.clientId,
      number: `DEV-${++seq}`,
      status: 'ENVOYE',
      totalTtc: '850.50',
      sentAt: new Date('2026-01-01T09:00:00Z'),
      publicToken: `tok-${seq}-${Date.now()}`,
      ...opts,
    })
    .returning();
  return q.id;
}

/** A follow-up row as the app would have created it (bypassing the create phase). */
export async function seedFollowup(db: Db, s: SeedCompany, opts: Partial<typeof followups.$inferInsert> & { sourceId: number }) {
  const [f] = await db
    .insert(followups)
    .values({
      companyId: s.companyId,
      clientId: s.clientId,
      type: 'FACTURE_IMPAYEE',
      sourceType: 'invoice',
      sourceLabel: `Facture X${opts.sourceId}`,
      dueDate: new Date('2026-01-01T00:00:00Z'),
      status: 'A_FAIRE',
      autoEnabled: true,
      ...opts,
    })
    .returning();
  return f.id;
}

export async function addPayment(db: Db, invoiceId: number, amount: string) {
  await db.insert(invoicePayments).values({ invoiceId, amount });
}

export async function addInboundMessage(db: Db, s: SeedCompany, at: Date, kind: 'person' | 'auto_reply' | 'bounce' = 'person') {
  const [cv] = await db
    .insert(conversations)
    .values({ companyId: s.companyId, clientId: s.clientId, subject: 'Re: relance', lastMessageAt: at })
    .returning();
  await db.insert(inboxMessages).values({
    conversationId: cv.id,
    companyId: s.companyId,
    fromName: 'Client',
    fromEmail: 'client@client.example',
    content: 'Je règle demain',
    isFromClient: true,
    externalId: `in-${++seq}@client.example`,
    sentAt: at,
    createdAt: at,
    kind,
  });
}

export async function addMailbox(db: Db, companyId: number, v: Partial<typeof inboxIntegrations.$inferInsert>) {
  const [ii] = await db
    .insert(inboxIntegrations)
    .values({ companyId, name: 'Boîte principale', isPrimary: true, isActive: true, ...v })
    .returning();
  return ii.id;
}

export async function history(db: Db, followupId?: number) {
  return queryRows<{
    followup_id: number;
    step: number | null;
    delivery: string | null;
    attempts: number;
    error: string | null;
    message_id: string | null;
    sent_at: Date;
    conversation_id: number | null;
  }>(
    db,
    sql`
    select followup_id, step, delivery::text, attempts, error, message_id, sent_at, conversation_id from ${followupHistory}
    ${followupId === undefined ? sql`` : sql`where followup_id = ${followupId}`} order by followup_id, step`,
  );
}

export async function followupRow(db: Db, id: number) {
  const rows = await queryRows<{ status: string; due_date: string; actual_date: string | null }>(
    db,
    sql`select status::text, due_date, actual_date from followups where id = ${id}`,
  );
  const r = rows[0];
  return { status: r.status, due_date: new Date(r.due_date), actual_date: r.actual_date ? new Date(r.actual_date) : null };
}

/** Removes every business row, so each test starts from an empty tenant set. */
export async function wipe(db: Db) {
  await db.execute(sql`truncate followup_history, followups, followup_creations, notifications, inbox_messages, conversations,
    inbox_integrations, invoice_payments, invoices, quotes, clients, subscriptions, company_settings, cron_runs, cron_leases, companies
    restart identity cascade`);
}

/**
 * A JobContext built by hand, as runJob would, without the lease: for tests that fire the job
 * function itself concurrently (beyond what the lease protects).
 */
export function handContext(db: Db, env: Record<string, string>, now: Date, overrides: Partial<JobContext> = {}): JobContext {
  const config = parseConfig({ NODE_ENV: 'test', ...env });
  return {
    db,
    now,
    deadline: Date.now() + 60_000,
    dryRun: false,
    scope: {},
    log: createLogger({ level: 'silent' }),
    mail: createMailFactory(config),
    config,
    runId: `hand-${++seq}`,
    trigger: 'cli',
    ...overrides,
  };
}

/** The decoded text part of a raw message (quoted-printable or plain). */
export function decodeBody(raw: string): string {
  const body = raw
    .split(/\r?\n\r?\n/)
    .slice(1)
    .join('\n\n');
  if (!/quoted-printable/i.test(raw)) return body;
  const bytes = body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}
