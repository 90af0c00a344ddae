/**
 * The rules of automatic follow-ups (docs/followups.md), pure: rows + `now` in, decisions out. No I/O,
 * so every rule is unit-tested with an injected clock. The state machine is in docs/followups.md.
 */
import type { Delivery } from '../../../db/schema/enums.js';
export type { Delivery };
import type { CompanySettings } from '../../settings.js';
import { addDays, localWeekdayAndMinutes, startOfMonth } from '../../time/zone.js';
import { checkSingleAddress, describeAddressProblem } from '../../text/address.js';
import { chooseTemplate, type AutoFollowupType, type ChosenTemplate } from './messages.js';

/** STARTER plan: 20 follow-ups per calendar month (as in the original backend); the other plans are unlimited. */
export const STARTER_MONTHLY_QUOTA = 20;
/** SMTP tries per step before giving up and telling the company (docs/followups.md, "State machine"). */
export const MAX_ATTEMPTS_PER_STEP = 3;

/** One automatic step already recorded in followup_history. */
export type StepRecord = {
  step: number;
  delivery: Delivery;
  sentAt: Date;
  attempts: number;
  nextAttemptAt: Date | null;
  messageId: string | null;
};

export type InvoiceFacts = {
  id: number;
  number: string;
  invoiceType: 'FACTURE' | 'AVOIR';
  status: 'BROUILLON' | 'ENVOYEE' | 'PAYEE' | 'IMPAYEE' | 'EN_RETARD' | 'ANNULEE';
  totalCents: number;
  paidCents: number;
  dueDate: Date | null;
  sentAt: Date | null;
  deletedAt: Date | null;
  archivedAt: Date | null;
};

export type QuoteFacts = {
  id: number;
  number: string;
  status: 'BROUILLON' | 'ENVOYE' | 'VU' | 'ACCEPTE' | 'REFUSE';
  totalCents: number;
  sentAt: Date | null;
  acceptedAt: Date | null;
  refusedAt: Date | null;
  validUntil: Date | null;
  signed: boolean;
  publicToken: string | null;
  deletedAt: Date | null;
};

export type ClientFacts = { id: number; name: string; email: string | null };

export type CompanyFacts = {
  id: number;
  name: string;
  isActive: boolean;
  settings: CompanySettings;
  /** STARTER when the company has no subscription row (as in the original backend). */
  plan: 'STARTER' | 'PROFESSIONAL' | 'ENTERPRISE';
  /** History rows (automatic and manual) that count against this calendar month's quota. */
  sentThisMonth: number;
};

export type FollowupRow = {
  id: number;
  companyId: number;
  clientId: number;
  type: AutoFollowupType;
  sourceType: string;
  sourceId: number | null;
  sourceLabel: string;
  dueDate: Date;
  createdAt: Date;
};

/** Everything one decision needs, loaded in batches by the thin part. */
export type FollowupFacts = {
  followup: FollowupRow;
  company: CompanyFacts;
  client: ClientFacts | null;
  invoice: InvoiceFacts | null;
  quote: QuoteFacts | null;
  steps: StepRecord[];
  /** The latest inbound message of this client (Date header, else import time), if any. */
  lastClientMessageAt: Date | null;
  /** The client's current address bounced hard (docs/bounces.md): nothing is sent to it. */
  clientAddressBounced?: boolean;
};

export type StopReason =
  | 'invoice_paid'
  | 'invoice_cancelled'
  | 'credit_note'
  | 'invoice_not_sent'
  | 'source_deleted'
  | 'source_archived'
  | 'quote_accepted'
  | 'quote_refused'
  | 'quote_expired'
  | 'quote_not_sent'
  | 'client_deleted'
  | 'client_replied'
  | 'max_relances'
  | 'unsupported_source';

export type WaitReason =
  | 'in_flight'
  | 'delivery_unknown'
  | 'failed_final'
  | 'retry_backoff'
  | 'next_step_not_due'
  | 'company_inactive'
  | 'no_client_email'
  | 'invalid_client_email'
  | 'channel_unsupported'
  | 'outside_send_window'
  | 'quota_exceeded'
  | 'bounced';

export type Decision =
  | { kind: 'stop'; reason: StopReason }
  /** `problem`: bad data that a person must fix; the run lists it in `errors` under the follow-up's id. */
  | { kind: 'wait'; reason: WaitReason; problem?: { code: string; message: string } }
  | { kind: 'send'; step: number; retry: boolean; template: ChosenTemplate; previousMessageId: string | null; balanceCents: number };

/** The delay before step `step` (1-based): relance_delays[step-1], the last delay repeating. */
export function delayBeforeStep(step: number, delays: readonly number[]): number {
  const list = delays.length ? delays : [7];
  return list[Math.min(Math.max(step, 1) - 1, list.length - 1)];
}

/**
 * When step `step` is due. Step 1: `relance_delays[0]` calendar days (company zone) after the
 * anchor — not twice the delay (the original counted it twice). Step k+1: `relance_delays[k]` days after step k was sent.
 */
export function stepDueAt(step: number, reference: Date, delays: readonly number[], tz: string): Date {
  return addDays(reference, delayBeforeStep(step, delays), tz);
}

/** Inside the company's send window (local time, ISO weekdays, [start, end)). */
export function inSendWindow(now: Date, window: { start: string; end: string; weekdays: number[] }, tz: string): boolean {
  const { weekday, minutes } = localWeekdayAndMinutes(now, tz);
  const toMin = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
  const start = toMin(window.start);
  const end = toMin(window.end);
  if (!window.weekdays.includes(weekday)) return false;
  // a window like 22:00–06:00 wraps around midnight
  return start <= end ? minutes >= start && minutes < end : minutes >= start || minutes < end;
}

/** First instant of the company's current calendar month (the quota period). */
export const quotaPeriodStart = (now: Date, tz: string) => startOfMonth(now, tz);

export function monthlyQuota(plan: CompanyFacts['plan']): number | null {
  return plan === 'STARTER' ? STARTER_MONTHLY_QUOTA : null;
}

/** The source's fresh state: a reason to stop, or null when a relance still makes sense. */
function sourceStopReason(f: FollowupFacts, now: Date): StopReason | null {
  const stops = f.company.settings.followups.stop_conditions;
  if (f.followup.type === 'FACTURE_IMPAYEE') {
    const inv = f.invoice;
    if (f.followup.sourceType !== 'invoice') return 'unsupported_source';
    if (!inv || inv.deletedAt) return 'source_deleted';
    if (inv.invoiceType === 'AVOIR') return 'credit_note';
    if (inv.status === 'ANNULEE') return 'invoice_cancelled';
    // a dunning email for a paid invoice is never right, whatever stop_on_invoice_paid says
    if (inv.status === 'PAYEE' || inv.totalCents - inv.paidCents <= 0) return 'invoice_paid';
    if (inv.archivedAt) return 'source_archived';
    if (inv.status === 'BROUILLON') return 'invoice_not_sent';
    return null;
  }
  const q = f.quote;
  if (f.followup.sourceType !== 'quote') return 'unsupported_source';
  if (!q || q.deletedAt) return 'source_deleted';
  if (q.status === 'ACCEPTE' || q.signed || q.acceptedAt) return 'quote_accepted';
  if ((q.status === 'REFUSE' || q.refusedAt) && stops.stop_on_quote_refused) return 'quote_refused';
  if (q.validUntil && q.validUntil.getTime() <= now.getTime()) return 'quote_expired';
  if (q.status === 'BROUILLON') return 'quote_not_sent';
  return null;
}

/** The moment after which a client message counts as a reply: the last step, else the source's sending. */
export function replyReference(f: FollowupFacts): Date {
  const sent = f.steps.filter((s) => s.delivery === 'sent').sort((a, b) => b.step - a.step)[0];
  if (sent) return sent.sentAt;
  return f.invoice?.sentAt ?? f.quote?.sentAt ?? f.followup.createdAt;
}

/**
 * One follow-up, quota aside (the batch applies it): stop (→ FAIT, reason counted), wait (left
 * for a later run) or send step k. Checks run against rows loaded after the claim.
 */
export function decideFollowup(
  f: FollowupFacts,
  now: Date,
  sendWindowOpen: (f: FollowupFacts) => boolean = (x) =>
    inSendWindow(now, x.company.settings.followups.send_window, x.company.settings.companyInfo.timezone),
): Decision {
  const settings = f.company.settings;
  const lastSent = f.steps.filter((s) => s.delivery === 'sent').reduce((m, s) => Math.max(m, s.step), 0);
  const nextStep = lastSent + 1;
  const pending = f.steps.find((s) => s.step === nextStep);
  // a step another invocation is sending right now is theirs: never stop or touch it mid-flight
  if (pending?.delivery === 'sending') return { kind: 'wait', reason: 'in_flight' };
  if (!f.company.isActive) return { kind: 'wait', reason: 'company_inactive' };
  if (!f.client) return { kind: 'stop', reason: 'client_deleted' };
  const sourceStop = sourceStopReason(f, now);
  if (sourceStop) return { kind: 'stop', reason: sourceStop };
  if (lastSent >= settings.followups.max_relances) return { kind: 'stop', reason: 'max_relances' };
  if (
    settings.followups.stop_conditions.stop_on_client_response &&
    f.lastClientMessageAt &&
    f.lastClientMessageAt.getTime() > replyReference(f).getTime()
  ) {
    return { kind: 'stop', reason: 'client_replied' };
  }
  // never re-sent automatically: a duplicate dunning email is worse than a late one
  if (pending?.delivery === 'unknown') return { kind: 'wait', reason: 'delivery_unknown' };
  const previous = f.steps.find((s) => s.step === lastSent);
  // a step settled as sent by a person (an `unknown` found in the Sent folder) left the due date
  // that sent it: the next step still waits its delay after that one
  if (
    previous &&
    f.followup.dueDate.getTime() <= previous.sentAt.getTime() &&
    afterSent(lastSent, previous.sentAt, settings).dueDate.getTime() > now.getTime()
  ) {
    return { kind: 'wait', reason: 'next_step_not_due' };
  }
  if (pending?.delivery === 'failed') {
    if (pending.attempts >= MAX_ATTEMPTS_PER_STEP) return { kind: 'wait', reason: 'failed_final' };
    if (pending.nextAttemptAt && pending.nextAttemptAt.getTime() > now.getTime()) return { kind: 'wait', reason: 'retry_backoff' };
  }
  if (!f.client.email?.trim()) return { kind: 'wait', reason: 'no_client_email' };
  // exactly one address, or nothing is sent: never a list, a group or an injected header
  const to = checkSingleAddress(f.client.email);
  if (!to.ok) {
    return {
      kind: 'wait',
      reason: 'invalid_client_email',
      problem: { code: 'invalid_recipient', message: describeAddressProblem(`client ${f.client.id} email`, f.client.email, to.reason) },
    };
  }
  if (f.clientAddressBounced) return { kind: 'wait', reason: 'bounced' };
  const template = chooseTemplate(f.followup.type, settings.followups.messages);
  if (template.method !== 'email') return { kind: 'wait', reason: 'channel_unsupported' };
  if (!sendWindowOpen(f)) {
    return { kind: 'wait', reason: 'outside_send_window' };
  }
  const balanceCents = f.invoice ? f.invoice.totalCents - f.invoice.paidCents : (f.quote?.totalCents ?? 0);
  // a bounced step goes again once the client has a new address (it never reached them)
  return {
    kind: 'send',
    step: nextStep,
    retry: pending?.delivery === 'failed' || pending?.delivery === 'bounced',
    template,
    previousMessageId: previous?.messageId ?? null,
    balanceCents,
  };
}

/**
 * A batch of follow-ups: each decided on its own, then the monthly quota applied per company in
 * due order (the oldest due goes first; the 21st send of a STARTER month waits).
 */
export function decideBatch(batch: readonly FollowupFacts[], now: Date): Decision[] {
  const used = new Map<number, number>();
  // the window is a property of the company at `now`: looked up once per company, not per follow-up
  const open = new Map<number, boolean>();
  const sendWindowOpen = (f: FollowupFacts) => {
    let o = open.get(f.company.id);
    if (o === undefined) {
      o = inSendWindow(now, f.company.settings.followups.send_window, f.company.settings.companyInfo.timezone);
      open.set(f.company.id, o);
    }
    return o;
  };
  return batch.map((f) => {
    const d = decideFollowup(f, now, sendWindowOpen);
    if (d.kind !== 'send' || d.retry) return d; // a retry of a claimed step was counted when first claimed
    const quota = monthlyQuota(f.company.plan);
    if (quota === null) return d;
    const count = used.get(f.company.id) ?? f.company.sentThisMonth;
    if (count >= quota) return { kind: 'wait', reason: 'quota_exceeded' };
    used.set(f.company.id, count + 1);
    return d;
  });
}

/** After step k was sent: the next due time, or done after the last step (docs/followups.md). */
export function afterSent(step: number, sentAt: Date, settings: CompanySettings): { status: 'A_FAIRE' | 'FAIT'; dueDate: Date } {
  const { max_relances, relance_delays } = settings.followups;
  if (step >= max_relances) return { status: 'FAIT', dueDate: sentAt };
  return { status: 'A_FAIRE', dueDate: stepDueAt(step + 1, sentAt, relance_delays, settings.companyInfo.timezone) };
}

/**
 * Back-off after a failed try: a temporary refusal (4xx, network) is retried soon, a permanent
 * one (5xx) later — a mailbox that is full today may accept tomorrow.
 */
export function retryDelayMs(attempts: number, permanent: boolean): number {
  const base = permanent ? 60 * 60_000 : 15 * 60_000; // 1 h or 15 min, ×4 per further try
  return base * 4 ** Math.max(0, attempts - 1);
}

export function afterFailure(attempts: number, permanent: boolean, now: Date): { final: boolean; nextAttemptAt: Date | null } {
  if (attempts >= MAX_ATTEMPTS_PER_STEP) return { final: true, nextAttemptAt: null };
  return { final: false, nextAttemptAt: new Date(now.getTime() + retryDelayMs(attempts, permanent)) };
}
