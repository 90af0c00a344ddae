/**
 * From loaded rows to what a batch will do, pure: rows → facts (`buildFacts`), facts → decisions
 * (plan.ts) → the prepared sends with their rendered message and sender (`planBatch`), and the
 * dry run's plan items. Nothing here opens a connection or decrypts a password (run.ts does).
 */
import type { ItemError } from '../../cron/types.js';
import { deterministicMessageId } from '../../mail/message-id.js';
import { maskEmail } from '../../log.js';
import { parseCompanySettings, type CompanySettings } from '../../settings.js';
import { formatFrenchDate } from '../../time/zone.js';
import {
  afterSent,
  decideBatch,
  type ClientFacts,
  type CompanyFacts,
  type Decision,
  type FollowupFacts,
  type InvoiceFacts,
  type QuoteFacts,
} from './plan.js';
import type { DueRow, LoadedBatch } from './sql.js';
import { formatEuros, renderMessage, type RenderedMessage, type TemplateVariables } from './messages.js';
import { planSender, type SenderPlan } from './transport.js';
import { formatFrom } from '../../text/address.js';
import { links } from '../../links.js';

export type Prepared = {
  facts: FollowupFacts;
  decision: Extract<Decision, { kind: 'send' }>;
  /** The follow-up's state once this step is sent (decided at claim time: `now` is the run's). */
  next: ReturnType<typeof afterSent>;
  sender: SenderPlan;
  fromHeader: string;
  messageId: string;
  message: RenderedMessage;
};

export type PlanItem = {
  followupId: number | null;
  companyId: number;
  company: string;
  client: string;
  clientEmail: string | null;
  source: string;
  sourceType: string;
  sourceId: number | null;
  step: number;
  due: string;
  subject: string;
  template: 'company' | 'default';
};

export function toDate(v: string | Date | null | undefined): Date | null {
  return v === null || v === undefined ? null : v instanceof Date ? v : new Date(v);
}

/** Settings parsed once per company per run; a malformed blob is reported once, never fatal. */
export function settingsCache(errors: ItemError[]) {
  const cache = new Map<number, CompanySettings>();
  return (companyId: number, raw: unknown): CompanySettings => {
    let s = cache.get(companyId);
    if (!s) {
      const parsed = parseCompanySettings(raw);
      s = parsed.settings;
      cache.set(companyId, s);
      if (parsed.problems.length) {
        errors.push({
          scope: 'company',
          id: companyId,
          code: 'settings_invalid',
          message: `defaults used for: ${parsed.problems.join('; ')}`,
        });
      }
    }
    return s;
  };
}

export function buildFacts(
  due: DueRow[],
  loaded: LoadedBatch,
  settingsOf: ReturnType<typeof settingsCache>,
  sentThisMonth: Map<number, number>,
) {
  const companies = new Map<number, CompanyFacts & { raw: LoadedBatch['companies'][number] }>();
  for (const c of loaded.companies) {
    companies.set(c.id, {
      id: c.id,
      name: c.name,
      isActive: c.is_active,
      settings: settingsOf(c.id, c.settings),
      plan: (c.plan as CompanyFacts['plan'] | null) ?? 'STARTER',
      sentThisMonth: sentThisMonth.get(c.id) ?? 0,
      raw: c,
    });
  }
  const clients = new Map<number, ClientFacts>(loaded.clients.map((c) => [c.id, { id: c.id, name: c.name, email: c.email }]));
  const invoices = new Map<number, InvoiceFacts>(
    loaded.invoices.map((i) => [
      i.id,
      {
        id: i.id,
        number: i.number,
        invoiceType: i.invoice_type as InvoiceFacts['invoiceType'],
        status: i.status as InvoiceFacts['status'],
        totalCents: Number(i.total_cents),
        paidCents: Number(i.paid_cents),
        dueDate: toDate(i.due_date),
        sentAt: toDate(i.sent_at),
        deletedAt: toDate(i.deleted_at),
        archivedAt: toDate(i.archived_at),
      },
    ]),
  );
  const quotes = new Map<number, QuoteFacts>(
    loaded.quotes.map((q) => [
      q.id,
      {
        id: q.id,
        number: q.number,
        status: q.status as QuoteFacts['status'],
        totalCents: Number(q.total_cents),
        sentAt: toDate(q.sent_at),
        acceptedAt: toDate(q.accepted_at),
        refusedAt: toDate(q.refused_at),
        validUntil: toDate(q.valid_until),
        signed: q.signed,
        publicToken: q.public_token,
        deletedAt: toDate(q.deleted_at),
      },
    ]),
  );
  const replies = new Map(loaded.replies.map((r) => [`${r.company_id}:${r.client_id}`, new Date(r.at)]));
  return due.flatMap((d): FollowupFacts[] => {
    const company = companies.get(d.company_id);
    if (!company) return []; // the company vanished between the claim and the load
    const client = clients.get(d.client_id);
    return [
      {
        followup: {
          id: d.id,
          companyId: d.company_id,
          clientId: d.client_id,
          type: d.type,
          sourceType: d.source_type,
          sourceId: d.source_id,
          sourceLabel: d.source_label,
          dueDate: toDate(d.due_date)!,
          createdAt: toDate(d.created_at)!,
        },
        company,
        client: client ?? null,
        invoice: d.source_type === 'invoice' && d.source_id !== null ? (invoices.get(d.source_id) ?? null) : null,
        quote: d.source_type === 'quote' && d.source_id !== null ? (quotes.get(d.source_id) ?? null) : null,
        steps: loaded.steps
          .filter((s) => s.followup_id === d.id)
          .map((s) => ({
            step: s.step,
            delivery: s.delivery,
            sentAt: new Date(s.sent_at),
            attempts: s.attempts,
            nextAttemptAt: toDate(s.next_attempt_at),
            messageId: s.message_id,
          })),
        lastClientMessageAt: replies.get(`${d.company_id}:${d.client_id}`) ?? null,
      },
    ];
  });
}

export function templateVariables(
  f: FollowupFacts,
  balanceCents: number,
  integrationEmail: string | null,
  frontendUrl: string,
): TemplateVariables {
  const info = f.company.settings.companyInfo;
  const tz = info.timezone;
  const due = f.invoice?.dueDate ?? f.quote?.validUntil ?? null;
  return {
    client_name: f.client?.name?.trim() || 'Client',
    source_label: f.followup.sourceLabel,
    company_name: f.company.name,
    company_email: info.email ?? integrationEmail ?? '',
    company_phone: info.phone ?? '',
    amount: formatEuros(balanceCents),
    due_date: due ? formatFrenchDate(due, tz) : '',
    signature_link: f.quote?.publicToken ? links.quoteSignature(frontendUrl, f.quote.publicToken) : '',
    company_address: info.address ?? '',
    company_city: info.city ?? '',
    company_postal_code: info.postal_code ?? '',
    company_country: info.country ?? '',
    company_siren: info.siren ?? '',
    company_siret: info.siret ?? '',
    company_vat_number: info.vat_number ?? '',
  };
}

/** What a loaded batch will do: follow-ups to stop, to leave waiting (with the reason), and the sends. */
export type BatchPlan = {
  stops: { followupId: number; reason: string }[];
  waits: { followupId: number; companyId: number; reason: string; problem?: Omit<ItemError, 'scope' | 'id'> }[];
  sends: Prepared[];
};

/**
 * Decides a loaded batch: the rules (plan.ts), then for each send its sender (the company's
 * mailbox or the platform; an unusable From / Reply-To makes it wait) and its rendered message.
 * `nextAfterSent` gives the follow-up's state after a step (computed once per company and step).
 */
export function planBatch(
  facts: FollowupFacts[],
  loaded: LoadedBatch,
  now: Date,
  env: { mailFrom: string; frontendUrl: string },
  nextAfterSent: (f: FollowupFacts, step: number) => ReturnType<typeof afterSent>,
): BatchPlan {
  const plan: BatchPlan = { stops: [], waits: [], sends: [] };
  const companies = new Map(loaded.companies.map((c) => [c.id, c]));
  const decisions = decideBatch(facts, now);
  facts.forEach((f, i) => {
    const d = decisions[i];
    const followupId = f.followup.id;
    if (d.kind === 'stop') {
      plan.stops.push({ followupId, reason: d.reason });
      return;
    }
    if (d.kind === 'wait') {
      plan.waits.push({ followupId, companyId: f.company.id, reason: d.reason, ...(d.problem ? { problem: d.problem } : {}) });
      return;
    }
    const integration = companies.get(f.company.id)!.integration;
    const sender = planSender(integration, env.mailFrom, f.company.settings.companyInfo.email ?? null);
    if (sender.kind === 'invalid') {
      // the company's From / Reply-To is not one address: its follow-ups wait until it is fixed
      plan.waits.push({ followupId, companyId: f.company.id, reason: 'invalid_sender_address', problem: sender.problem });
      return;
    }
    const vars = templateVariables(f, d.balanceCents, integration?.email_address ?? null, env.frontendUrl);
    plan.sends.push({
      facts: f,
      decision: d,
      sender,
      message: renderMessage(d.template, vars),
      next: nextAfterSent(f, d.step),
      fromHeader: formatFrom(f.company.name, sender.fromAddress),
      messageId: deterministicMessageId('followup', [followupId, d.step], sender.fromAddress),
    });
  });
  return plan;
}

/** A dry run's sample item: what the send would be (the client's address masked). */
export function planItemOf(p: Prepared): PlanItem {
  const f = p.facts;
  return {
    followupId: f.followup.id > 0 ? f.followup.id : null,
    companyId: f.company.id,
    company: f.company.name,
    client: f.client?.name ?? '',
    clientEmail: f.client?.email ? maskEmail(f.client.email) : null,
    source: f.followup.sourceLabel,
    sourceType: f.followup.sourceType,
    sourceId: f.followup.sourceId,
    step: p.decision.step,
    due: f.followup.dueDate.toISOString(),
    subject: p.message.subject,
    template: p.message.template,
  };
}
