/**
 * `/followups/process-automatic` (SPEC §5.2): create the follow-ups of unpaid invoices and
 * unanswered quotes, then send the due steps exactly once. The rules are in rules.ts (pure), the
 * statements in sql.ts; this file only sequences them. State machine: docs/followups.md.
 */
import pLimit from 'p-limit';
import { budgetSpent, type ItemError, type Job, type JobContext, type JobResult } from '../../cron/types.js';
import { deterministicMessageId } from '../../mail/message-id.js';
import { createClaimedSend, sweepClaims, type ClaimedSend } from '../../mail/claimed-send.js';
import { scopeFilter } from '../../cron/scope.js';
import { sql } from 'drizzle-orm';
import { maskEmail } from '../../log.js';
import { parseCompanySettings, type CompanySettings } from '../../settings.js';
import { formatFrenchDate } from '../../time/zone.js';
import {
  MAX_ATTEMPTS_PER_STEP, afterFailure, afterSent, decideBatch, monthlyQuota, quotaPeriodStart,
  type ClientFacts, type CompanyFacts, type Decision, type FollowupFacts, type InvoiceFacts, type QuoteFacts,
} from './rules.js';
import {
  FOLLOWUP_CLAIMS, countDue, countSentThisPeriod, createFollowups, holdUnknownSteps, loadBatch, loadCreationCompanies,
  lockQuotaCompanies, previewCreations, recordFailed, recordSentBatch, selectDue, writeClaims,
  type ClaimRequest, type CreationConfig, type Cursor, type DueRow, type LoadedBatch, type SentRecord,
} from './sql.js';
import { formatEuros, renderMessage, type RenderedMessage, type TemplateVariables } from './templates.js';
import { CredentialError, formatFrom, planSender, senderCache, type SenderPlan } from './transport.js';
import { addDays, loadPostgresZones } from '../../time/zone.js';
import { createSendRecorder, type SendRecorder } from './recorder.js';
import { readFollowupsAttention } from './attention.js';

/** Follow-ups claimed per transaction: big enough to amortise the 7 statements of a claim. */
export const BATCH_SIZE = 100;
/**
 * Emails in progress at once, from hand-over to the written record: enough to keep every pooled
 * connection busy while others wait for their record, and the bound on what a crash can leave
 * `unknown` (docs/sending.md).
 */
export const SEND_CONCURRENCY = 20;
/** Records of accepted sends per statement at most (group commit: usually fewer). */
export const RECORD_MAX_BATCH = 50;
/** Record statements under way at once: one slow statement must not hold every send slot. */
export const RECORD_PARALLEL = 3;
/** Kept before the deadline when deciding to claim another batch: time to send what it holds. */
export const CLAIM_RESERVE_MS = 3_000;

type Counter = Record<string, number>;
const bump = (c: Counter, key: string, by = 1) => { c[key] = (c[key] ?? 0) + by; };

type Prepared = {
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
  followupId: number | null; companyId: number; company: string; client: string; clientEmail: string | null;
  source: string; sourceType: string; sourceId: number | null; step: number; due: string; subject: string; template: 'company' | 'default';
};

function toDate(v: string | Date | null | undefined): Date | null {
  return v === null || v === undefined ? null : v instanceof Date ? v : new Date(v);
}

/** Settings parsed once per company per run; a malformed blob is reported once, never fatal. */
function settingsCache(errors: ItemError[]) {
  const cache = new Map<number, CompanySettings>();
  return (companyId: number, raw: unknown): CompanySettings => {
    let s = cache.get(companyId);
    if (!s) {
      const parsed = parseCompanySettings(raw);
      s = parsed.settings;
      cache.set(companyId, s);
      if (parsed.problems.length) {
        errors.push({ scope: 'company', id: companyId, code: 'settings_invalid', message: `defaults used for: ${parsed.problems.join('; ')}` });
      }
    }
    return s;
  };
}

function buildFacts(due: DueRow[], loaded: LoadedBatch, settingsOf: ReturnType<typeof settingsCache>, sentThisMonth: Map<number, number>) {
  const companies = new Map<number, CompanyFacts & { raw: LoadedBatch['companies'][number] }>();
  for (const c of loaded.companies) {
    companies.set(c.id, {
      id: c.id, name: c.name, isActive: c.is_active, settings: settingsOf(c.id, c.settings),
      plan: (c.plan as CompanyFacts['plan'] | null) ?? 'STARTER', sentThisMonth: sentThisMonth.get(c.id) ?? 0, raw: c,
    });
  }
  const clients = new Map<number, ClientFacts>(loaded.clients.map((c) => [c.id, { id: c.id, name: c.name, email: c.email }]));
  const invoices = new Map<number, InvoiceFacts>(loaded.invoices.map((i) => [i.id, {
    id: i.id, number: i.number, invoiceType: i.invoice_type as InvoiceFacts['invoiceType'], status: i.status as InvoiceFacts['status'],
    totalCents: Number(i.total_cents), paidCents: Number(i.paid_cents), dueDate: toDate(i.due_date), sentAt: toDate(i.sent_at),
    deletedAt: toDate(i.deleted_at), archivedAt: toDate(i.archived_at),
  }]));
  const quotes = new Map<number, QuoteFacts>(loaded.quotes.map((q) => [q.id, {
    id: q.id, number: q.number, status: q.status as QuoteFacts['status'], totalCents: Number(q.total_cents), sentAt: toDate(q.sent_at),
    acceptedAt: toDate(q.accepted_at), refusedAt: toDate(q.refused_at), validUntil: toDate(q.valid_until), signed: q.signed,
    publicToken: q.public_token, deletedAt: toDate(q.deleted_at),
  }]));
  const replies = new Map(loaded.replies.map((r) => [`${r.company_id}:${r.client_id}`, new Date(r.at)]));
  return due.flatMap((d): FollowupFacts[] => {
    const company = companies.get(d.company_id);
    if (!company) return []; // the company vanished between the claim and the load
    const client = clients.get(d.client_id);
    return [{
      followup: {
        id: d.id, companyId: d.company_id, clientId: d.client_id, type: d.type, sourceType: d.source_type,
        sourceId: d.source_id, sourceLabel: d.source_label, dueDate: toDate(d.due_date)!, createdAt: toDate(d.created_at)!,
      },
      company,
      client: client ?? null,
      invoice: d.source_type === 'invoice' && d.source_id !== null ? invoices.get(d.source_id) ?? null : null,
      quote: d.source_type === 'quote' && d.source_id !== null ? quotes.get(d.source_id) ?? null : null,
      steps: loaded.steps.filter((s) => s.followup_id === d.id).map((s) => ({
        step: s.step, delivery: s.delivery, sentAt: new Date(s.sent_at), attempts: s.attempts,
        nextAttemptAt: toDate(s.next_attempt_at), messageId: s.message_id,
      })),
      lastClientMessageAt: replies.get(`${d.company_id}:${d.client_id}`) ?? null,
    }];
  });
}

function templateVariables(f: FollowupFacts, balanceCents: number, integrationEmail: string | null, frontendUrl: string): TemplateVariables {
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
    signature_link: f.quote?.publicToken ? `${frontendUrl.replace(/\/+$/, '')}/quote/${encodeURIComponent(f.quote.publicToken)}` : '',
    company_address: info.address ?? '',
    company_city: info.city ?? '',
    company_postal_code: info.postal_code ?? '',
    company_country: info.country ?? '',
    company_siren: info.siren ?? '',
    company_siret: info.siret ?? '',
    company_vat_number: info.vat_number ?? '',
  };
}

function sourceLink(f: FollowupFacts, frontendUrl: string): { url: string; text: string } {
  const base = frontendUrl.replace(/\/+$/, '');
  return f.followup.sourceType === 'quote'
    ? { url: `${base}/app/billing/quotes/${f.followup.sourceId}`, text: 'Voir le devis' }
    : { url: `${base}/app/billing/invoices/${f.followup.sourceId}`, text: 'Voir la facture' };
}

type Stats = {
  created: Counter; due: number; sent: number; failedTries: number; failedFinal: number; retried: number;
  stopped: Counter; waiting: Counter; markedUnknown: number; releasedClaims: number; unknown: number; notStarted: number; lostClaims: number;
  unknownTemplateVariables: Counter; legacyPlaintextPasswords: number; via: Counter;
};

export async function runFollowups(ctx: JobContext): Promise<JobResult> {
  const { db, now, scope, dryRun, config } = ctx;
  const errors: ItemError[] = [];
  const plan: PlanItem[] = [];
  const stats: Stats = {
    created: {}, due: 0, sent: 0, failedTries: 0, failedFinal: 0, retried: 0, stopped: {}, waiting: {},
    markedUnknown: 0, releasedClaims: 0, unknown: 0, notStarted: 0, lostClaims: 0, unknownTemplateVariables: {}, legacyPlaintextPasswords: 0, via: {},
  };
  const settingsOf = settingsCache(errors);
  const senders = senderCache(ctx.mail, config.ENCRYPTION_MASTER_KEY, { db, config, log: ctx.log });
  // the state after step k depends only on the company's settings and the run's `now`: one
  // calendar computation per (company, step), not one per email
  const nextStates = new Map<string, ReturnType<typeof afterSent>>();
  const nextAfterSent = (f: FollowupFacts, step: number) => {
    const key = `${f.company.id}:${step}`;
    let n = nextStates.get(key);
    if (!n) { n = afterSent(step, now, f.company.settings); nextStates.set(key, n); }
    return n;
  };
  const legacyCounted = new Set<number>();

  // zones are checked against PostgreSQL's names (cached per process) before any is used
  await loadPostgresZones(db);
  // 1. Create (only the billing switch matters: defect 27)
  const creationCompanies = await loadCreationCompanies(db, scope);
  const cfg: CreationConfig[] = creationCompanies.map((c) => {
    const s = settingsOf(c.company_id, c.settings);
    return {
      company_id: c.company_id, quotes: s.autoFollowups.quotes_enabled, invoices: s.autoFollowups.invoices_enabled,
      first_delay: s.followups.relance_delays[0] ?? 7, tz: s.companyInfo.timezone,
    };
  }).filter((c) => c.quotes || c.invoices);
  let virtualDue: DueRow[] = [];
  if (dryRun) {
    const preview = await previewCreations(db, cfg, now);
    for (const p of preview) bump(stats.created, p.type === 'FACTURE_IMPAYEE' ? 'invoices' : 'quotes');
    // a dry run shows what the real run would send, including follow-ups it would create first
    virtualDue = preview.filter((p) => toDate(p.due_date)!.getTime() <= now.getTime()).map((p, i) => ({
      id: -(i + 1), company_id: p.company_id, client_id: p.client_id, type: p.type, source_type: p.source_type,
      source_id: p.source_id, source_label: p.source_label, due_date: toDate(p.due_date)!, created_at: now,
    }));
  } else {
    for (const r of await createFollowups(db, cfg, now)) bump(stats.created, r.type === 'FACTURE_IMPAYEE' ? 'invoices' : 'quotes', r.n);
    // 2. Claims of dead runs: never handed to SMTP → given back; handed over → `unknown`, never re-sent
    const swept = await sweepClaims(db, FOLLOWUP_CLAIMS, scopeFilter(sql`company_id`, scope));
    stats.releasedClaims = swept.released;
    stats.markedUnknown = swept.unknownIds.length;
    await holdUnknownSteps(db, swept.unknownIds);
  }

  // 3. Send, batch by batch, while the budget lasts
  const plannedPerCompany = new Map<number, number>(); // dry run: sends planned in earlier batches
  let cursor: Cursor = null;
  let partial = false;
  let virtualDone = false;
  const limit = pLimit(SEND_CONCURRENCY);
  const claimed = createClaimedSend({
    db, table: FOLLOWUP_CLAIMS, runId: ctx.runId, deadline: ctx.deadline, stopSignal: ctx.stopSignal, log: ctx.log,
    // a refused try is recorded `failed` with its back-off (rules.ts), not simply given back
    releaseOnRetry: false,
    // the hand-overs of the emails entering the send slots together go in one statement; the
    // crash bound stays SEND_CONCURRENCY (docs/sending.md)
    handOverAt: 'slot',
  });
  const recorder = createSendRecorder<SentRecord>({
    maxBatch: RECORD_MAX_BATCH, parallel: RECORD_PARALLEL,
    write: async (records) => { await recordSentBatch(db, records, now); },
    onWriteError: (records, err) => {
      // the emails went out; their rows stay `sending` and become `unknown`: never sent twice
      ctx.log.error({ followupIds: records.map((r) => r.followupId), err: (err as Error).message }, 'sent, but could not record it');
      for (const r of records) {
        errors.push({ scope: 'followup', id: r.followupId, code: 'record_failed', message: `step ${r.step} was sent but not recorded` });
      }
    },
  });
  // a pipeline of depth 2: the next batch is claimed while the previous one sends, and its sends
  // queue right behind (no idle connection between batches); at most two batches are claimed
  // and unfinished at any time
  let inFlight: Promise<unknown> = Promise.resolve();
  try {
    for (;;) {
      if (budgetSpent(ctx, CLAIM_RESERVE_MS)) { partial = true; break; }
      ctx.progress?.(`${stats.sent} follow-ups sent`);
      const prepared: Prepared[] = [];
      const stops: number[] = [];

      /** Decide a loaded batch: stops, waits, and the messages of the sends. */
      const decide = (due: DueRow[], loaded: LoadedBatch, sentThisMonth: Map<number, number>) => {
        const facts = buildFacts(due, loaded, settingsOf, sentThisMonth);
        const decisions = decideBatch(facts, now);
        facts.forEach((f, i) => {
          const d = decisions[i];
          if (d.kind === 'stop') { bump(stats.stopped, d.reason); stops.push(f.followup.id); return; }
          if (d.kind === 'wait') {
            bump(stats.waiting, d.reason);
            if (d.problem) errors.push({ scope: 'followup', id: f.followup.id, ...d.problem });
            return;
          }
          const company = loaded.companies.find((c) => c.id === f.company.id)!;
          const sender = planSender(company.integration, config.MAIL_FROM, f.company.settings.companyInfo.email ?? null);
          if (sender.kind === 'invalid') {
            // the company's From / Reply-To is not one address: its follow-ups wait until it is fixed
            bump(stats.waiting, 'invalid_sender_address');
            errors.push({ scope: 'followup', id: f.followup.id, ...sender.problem });
            return;
          }
          if (sender.kind === 'mailbox' && !dryRun) {
            try {
              const opened = senders.get(sender);
              if (opened.legacyPlaintext && !legacyCounted.has(sender.integrationId)) {
                legacyCounted.add(sender.integrationId);
                stats.legacyPlaintextPasswords++;
              }
            } catch (err) {
              if (!(err instanceof CredentialError)) throw err;
              bump(stats.waiting, 'mailbox_credentials');
              if (!errors.some((e) => e.code === err.code && e.id === f.company.id)) {
                errors.push({ scope: 'company', id: f.company.id, code: err.code, message: err.message });
              }
              return;
            }
          }
          const vars = templateVariables(f, d.balanceCents, company.integration?.email_address ?? null, config.FRONTEND_URL);
          const message = renderMessage(d.template, vars);
          for (const v of message.unknownVariables) bump(stats.unknownTemplateVariables, v);
          prepared.push({
            facts: f, decision: d, sender, message, next: nextAfterSent(f, d.step),
            fromHeader: formatFrom(f.company.name, sender.fromAddress),
            messageId: deterministicMessageId('followup', [f.followup.id, d.step], sender.fromAddress),
          });
        });
      };

      /** The quota count of the batch's STARTER companies, in each company's calendar month. */
      const countQuota = async (exec: typeof db, loaded: LoadedBatch) => {
        const periods = loaded.companies
          .filter((c) => monthlyQuota((c.plan as CompanyFacts['plan'] | null) ?? 'STARTER') !== null)
          .map((c) => {
            const tz = settingsOf(c.id, c.settings).companyInfo.timezone;
            const from = quotaPeriodStart(now, tz);
            const to = quotaPeriodStart(addDays(from, 40, tz), tz);
            return { company_id: c.id, from: from.toISOString(), to: to.toISOString() };
          });
        return countSentThisPeriod(exec, periods);
      };

      if (dryRun) {
        let due = await selectDue(db, scope, now, cursor, BATCH_SIZE, false);
        if (!due.length && !virtualDone) { due = virtualDue; virtualDone = true; }
        else if (due.length) cursor = { dueKey: due[due.length - 1].due_key!, id: due[due.length - 1].id };
        if (!due.length) break;
        stats.due += due.length;
        const loaded = await loadBatch(db, due);
        const counts = await countQuota(db, loaded);
        for (const [id, n] of plannedPerCompany) counts.set(id, (counts.get(id) ?? 0) + n);
        decide(due, loaded, counts);
        for (const p of prepared) {
          plannedPerCompany.set(p.facts.company.id, (plannedPerCompany.get(p.facts.company.id) ?? 0) + 1);
          bump(stats.via, p.sender.kind);
          if (plan.length < 50) {
            plan.push({
              followupId: p.facts.followup.id > 0 ? p.facts.followup.id : null, companyId: p.facts.company.id, company: p.facts.company.name,
              client: p.facts.client?.name ?? '', clientEmail: p.facts.client?.email ? maskEmail(p.facts.client.email) : null,
              source: p.facts.followup.sourceLabel, sourceType: p.facts.followup.sourceType, sourceId: p.facts.followup.sourceId,
              step: p.decision.step, due: p.facts.followup.dueDate.toISOString(), subject: p.message.subject, template: p.message.template,
            });
          }
        }
        stats.sent += prepared.length; // reported as wouldSend below
        continue;
      }

      // the claim: lock due rows (skipping others' locks), load fresh facts, decide, write the claims
      const owned = await db.transaction(async (tx) => {
        const due = await selectDue(tx, scope, now, cursor, BATCH_SIZE, true);
        if (!due.length) return null;
        cursor = { dueKey: due[due.length - 1].due_key!, id: due[due.length - 1].id };
        stats.due += due.length;
        await lockQuotaCompanies(tx, [...new Set(due.map((d) => d.company_id))]);
        const loaded = await loadBatch(tx, due);
        decide(due, loaded, await countQuota(tx, loaded));
        const claims: ClaimRequest[] = prepared.map((p) => ({
          followup_id: p.facts.followup.id, company_id: p.facts.company.id, step: p.decision.step,
          message: p.message.body, message_id: p.messageId, retry: p.decision.retry,
        }));
        return writeClaims(tx, claims, stops, now, MAX_ATTEMPTS_PER_STEP, ctx.runId);
      });
      if (owned === null) break;

      const ownedKey = new Map(owned.map((o) => [`${o.followup_id}:${o.step}`, o]));
      const mine = prepared.filter((p) => ownedKey.has(`${p.facts.followup.id}:${p.decision.step}`));
      stats.lostClaims += prepared.length - mine.length; // another invocation claimed them first
      const sends = Promise.all(mine.map((p) => limit(() => {
        const claim = ownedKey.get(`${p.facts.followup.id}:${p.decision.step}`)!;
        return sendOne(ctx, p, Number(claim.id), claim.attempts, claimed, senders, recorder, stats, errors);
      })));
      sends.catch(() => {}); // observed by an `await inFlight`; never an unhandled rejection meanwhile
      const previous = inFlight;
      inFlight = sends;
      await previous; // the batch before: done before the next claim
    }
  } finally {
    // whatever ends the loop (no more due rows, budget, an error), accepted sends get recorded
    await inFlight.catch(() => {});
    await recorder.close();
  }
  await inFlight;
  if (stats.notStarted > 0) partial = true; // given back for the next run

  if (partial) (stats as unknown as Record<string, unknown>).remaining = dryRun ? null : await countDue(db, scope, now);
  const out: Record<string, unknown> = { ...stats };
  if (dryRun) {
    out.wouldSend = stats.sent;
    out.wouldCreate = stats.created;
    delete out.sent;
    delete out.created;
  }
  return { stats: out, errors, partial, ...(dryRun ? { plan } : {}) };
}

/**
 * One claimed step through the send protocol: `sent` (recorded with the next step and the
 * outbound message, the slot held until it is written), refused (`failed` + back-off), `unknown`
 * (on hold, never re-sent), or given back untouched (deadline, stopping).
 */
async function sendOne(ctx: JobContext, p: Prepared, claimId: number, attempts: number, claimed: ClaimedSend,
  senders: ReturnType<typeof senderCache>, recorder: SendRecorder<SentRecord>, stats: Stats, errors: ItemError[]) {
  const f = p.facts;
  const { sender } = senders.get(p.sender);
  const previous = p.decision.previousMessageId;
  const outcome = await claimed.send(claimId, sender, {
    from: p.fromHeader,
    to: f.client!.email!,
    subject: p.message.subject,
    text: p.message.body,
    ...(p.sender.kind === 'platform' && p.sender.replyTo ? { replyTo: p.sender.replyTo } : {}),
    messageId: p.messageId,
    // later steps thread under the previous one in the client's mail program
    ...(previous ? { inReplyTo: previous, references: [previous] } : {}),
    headers: { 'Auto-Submitted': 'auto-generated', 'X-Lokario-Followup': `${f.followup.id}/${p.decision.step}` },
  });
  switch (outcome.state) {
    case 'not_started': stats.notStarted++; return;
    case 'lost': stats.lostClaims++; return;
    case 'unknown': {
      stats.unknown++;
      await holdUnknownSteps(ctx.db, [claimId]).catch(() => {});
      errors.push({ scope: 'followup', id: f.followup.id, code: outcome.error.code, message: `step ${p.decision.step}: no SMTP answer after the message was sent (never re-sent automatically): ${outcome.error.message}` });
      return;
    }
    case 'retry':
    case 'failed': {
      const e = outcome.error;
      const next = afterFailure(attempts, e.permanent, ctx.now);
      stats.failedTries++;
      if (next.final) stats.failedFinal++;
      const link = sourceLink(f, ctx.config.FRONTEND_URL);
      const clientName = f.client?.name ?? 'le client';
      try {
        await recordFailed(ctx.db, {
          followupId: f.followup.id, step: p.decision.step, companyId: f.company.id,
          error: `${e.code}: ${e.message}`, nextAttemptAt: next.nextAttemptAt, final: next.final,
          notification: next.final ? {
            title: 'Relance automatique non envoyée',
            message: `La relance n°${p.decision.step} (${f.followup.sourceLabel}) destinée à ${clientName} n'a pas pu être envoyée après ${attempts} tentatives : ${e.message}. Les relances automatiques de ce dossier sont suspendues.`,
            linkUrl: link.url, linkText: link.text,
          } : null,
        });
      } catch (dbErr) {
        ctx.log.error({ followupId: f.followup.id, step: p.decision.step, err: (dbErr as Error).message }, 'could not record a failed send');
      }
      errors.push({ scope: 'followup', id: f.followup.id, code: e.code, message: `step ${p.decision.step}, try ${attempts}: ${e.message}` });
      return;
    }
    case 'sent': break;
  }
  stats.sent++;
  if (p.decision.retry) stats.retried++;
  bump(stats.via, p.sender.kind);
  const next = p.next;
  await recorder.add({
    followupId: f.followup.id, step: p.decision.step, companyId: f.company.id, clientId: f.followup.clientId,
    nextStatus: next.status, nextDueDate: next.dueDate, subject: p.message.subject,
    fromName: f.company.name, fromEmail: p.sender.fromAddress, externalId: p.messageId.replace(/^<|>$/g, ''),
    inReplyTo: previous ? previous.replace(/^<|>$/g, '') : null,
  });
}

export const followupsJob: Job = { id: 'followups', run: runFollowups, attention: readFollowupsAttention };
