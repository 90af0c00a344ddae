import { parseCompanySettings } from '../../settings.js';
import type { Delivery } from '../../../db/schema/enums.js';
import { checkSingleAddress, describeAddressProblem } from '../../text/address.js';
import type { CandidateRow } from './sql-reminders.js';

export type { Delivery };

/**
 * The pure half of the job (docs/overdue-reminders.md): the rules' constants (the notification
 * parts are whole SQL statements in sql.ts, which take them from here), and, from rows read by
 * sql-reminders.ts and the clock, which appointment reminders go out and why the others do not.
 * No I/O here; the texts are in messages.ts.
 */

// ---------------------------------------------------------------------------------------------
// Notification rules (applied in SQL by sql.ts)

/** Priorities that make a task "critical" (the original also accepted `urgent`). */
export const CRITICAL_PRIORITIES = ['high', 'critical', 'urgent'] as const;
/** How far ahead a critical task is announced: two days leave time to act on it. */
export const CRITICAL_HORIZON_HOURS = 48;
/**
 * The overdue-invoice notification repeats once per this many days while it stays overdue:
 * days 1–7 late are week 0, 8–14 week 1, … (a notification on day 1, 8, 15…; sql.ts dedupe key).
 */
export const OVERDUE_REPEAT_DAYS = 7;

// ---------------------------------------------------------------------------------------------
// Appointment reminders

/** Statuses of an appointment that still takes place. */
export const REMINDABLE_STATUSES = ['SCHEDULED', 'CONFIRMED'] as const;
/** The largest offset the settings accept (settings.ts: 60 days): bounds the appointment scan. */
export const MAX_REMINDER_HOURS = 24 * 60;

export type ReminderOffset = { hoursBefore: number; content: string | null };

export type ReminderCompany = {
  companyId: number;
  name: string;
  email: string | null;
  timezone: string;
  enabled: boolean;
  offsets: ReminderOffset[];
  rescheduleBaseUrl: string | null; // set only when the link is enabled
  /** company_info.email is set but is not exactly one address: no reminder goes out with it as Reply-To. */
  invalidReplyTo: boolean;
};

/** A company's reminder configuration from its settings blob (lib/settings.ts defaults). */
export function reminderCompany(companyId: number, name: string, rawSettings: unknown): { company: ReminderCompany; problems: string[] } {
  const { settings, problems } = parseCompanySettings(rawSettings);
  const a = settings.appointments;
  const seen = new Set<number>();
  const offsets: ReminderOffset[] = [];
  for (const r of a.reminder_relances) {
    // the claim key stores whole hours; 1.5 h becomes 2 h rather than a silent miss
    const h = Math.round(r.hours_before);
    if (h <= 0 || seen.has(h)) continue; // 0 h would be due at the start itself, never "still ahead"
    seen.add(h);
    offsets.push({ hoursBefore: h, content: r.content?.trim() ? r.content : null });
  }
  const rawEmail = settings.companyInfo.email;
  const checked = rawEmail?.trim() ? checkSingleAddress(rawEmail) : null;
  if (checked && !checked.ok) problems.push(describeAddressProblem('company_info.email (Reply-To)', rawEmail, checked.reason));
  return {
    company: {
      companyId,
      name,
      email: checked?.ok ? checked.address : null,
      invalidReplyTo: checked !== null && !checked.ok,
      timezone: settings.companyInfo.timezone,
      enabled: a.auto_reminder_enabled,
      offsets,
      rescheduleBaseUrl: a.include_reschedule_link_in_reminder && a.reschedule_base_url ? a.reschedule_base_url : null,
    },
    problems,
  };
}

/** One (appointment, offset) whose window contains `now`, as read by sql-reminders.ts. */
export type ReminderCandidate = {
  appointmentId: number;
  companyId: number;
  status: string;
  start: Date;
  /** The start as Postgres stored it (microseconds), so the claim matches it exactly. */
  startIso: string;
  employeeId: number | null;
  hoursBefore: number;
  clientName: string | null;
  clientEmail: string | null;
  typeName: string | null;
  existingDelivery: Delivery | null;
  /** The client's current address bounced hard (docs/bounces.md). */
  clientAddressBounced?: boolean;
};

export type SkipReason =
  | 'reminders_disabled'
  | 'no_client_email'
  | 'invalid_client_email'
  | 'invalid_reply_to'
  | 'appointment_cancelled'
  | 'appointment_not_active'
  | 'failed_permanently'
  /** The client's address bounced hard (docs/bounces.md), or this reminder did. */
  | 'bounced';

export type ReminderPlan = {
  send: ReminderCandidate[];
  /** Already sent for this (appointment, offset, start time). */
  alreadySent: number;
  /** Claimed by a run still sending it. */
  inProgress: number;
  /** Outcome unknown after a crash: never re-sent automatically. */
  unknown: number;
  skipped: Partial<Record<SkipReason, number>>;
  /** Due but left for the next run (per-run cap). */
  deferred: number;
  /** Due, but the client's address is not exactly one address: item errors, nothing sent. */
  invalidRecipients: { appointmentId: number; hoursBefore: number; message: string }[];
};

/**
 * Decides, per (appointment, offset) candidate, whether a reminder goes out now. The candidates
 * are those whose send window contains now (`start − hours_before ≤ now < start`: the one rule is
 * sql-reminders.ts readReminderCandidates). Sends are ordered by send time (the most overdue
 * first) and capped at `maxSends`.
 */
export function planReminders(rows: ReminderCandidate[], companies: Map<number, ReminderCompany>, maxSends: number): ReminderPlan {
  const plan: ReminderPlan = { send: [], alreadySent: 0, inProgress: 0, unknown: 0, skipped: {}, deferred: 0, invalidRecipients: [] };
  const skip = (r: SkipReason) => {
    plan.skipped[r] = (plan.skipped[r] ?? 0) + 1;
  };
  const due: ReminderCandidate[] = [];
  for (const row of rows) {
    if (row.existingDelivery === 'sent') {
      plan.alreadySent++;
      continue;
    }
    if (row.existingDelivery === 'sending') {
      plan.inProgress++;
      continue;
    }
    if (row.existingDelivery === 'unknown') {
      plan.unknown++;
      continue;
    }
    if (row.existingDelivery === 'failed') {
      skip('failed_permanently');
      continue;
    }
    if (row.existingDelivery === 'bounced' || row.clientAddressBounced) {
      skip('bounced');
      continue;
    }
    const company = companies.get(row.companyId);
    if (row.status === 'CANCELLED') {
      skip('appointment_cancelled');
      continue;
    }
    if (!(REMINDABLE_STATUSES as readonly string[]).includes(row.status)) {
      skip('appointment_not_active');
      continue;
    }
    if (!company || !company.enabled) {
      skip('reminders_disabled');
      continue;
    }
    if (!row.clientEmail?.trim()) {
      skip('no_client_email');
      continue;
    }
    const to = checkSingleAddress(row.clientEmail);
    if (!to.ok) {
      skip('invalid_client_email');
      plan.invalidRecipients.push({
        appointmentId: row.appointmentId,
        hoursBefore: row.hoursBefore,
        message: describeAddressProblem(`client email of appointment ${row.appointmentId}`, row.clientEmail, to.reason),
      });
      continue;
    }
    // the company was told once (settings_invalid); its reminders wait until the address is fixed
    if (company.invalidReplyTo) {
      skip('invalid_reply_to');
      continue;
    }
    due.push(row);
  }
  due.sort((a, b) => sendTime(a) - sendTime(b) || a.appointmentId - b.appointmentId || b.hoursBefore - a.hoursBefore);
  plan.send = due.slice(0, Math.max(0, maxSends));
  plan.deferred = due.length - plan.send.length;
  return plan;
}

const sendTime = (r: ReminderCandidate) => r.start.getTime() - r.hoursBefore * 3_600_000;

/** The dedupe key of a reminder notification: one per (offset, start time) of an appointment. */
export function reminderDedupeKey(startIso: string, hoursBefore: number): string {
  return `start:${startIso};h:${hoursBefore}`;
}

export const candidateOf = (r: CandidateRow): ReminderCandidate => ({
  appointmentId: r.appointment_id,
  companyId: r.company_id,
  status: r.status,
  start: new Date(r.start),
  startIso: r.start_iso,
  employeeId: r.employee_id,
  hoursBefore: r.hours_before,
  clientName: r.client_name,
  clientEmail: r.client_email,
  typeName: r.type_name,
  existingDelivery: r.delivery,
});

/** The offsets to look for, company by company (disabled companies too: the planner counts what their setting held back). */
export const offsetsOf = (companies: Iterable<ReminderCompany>) =>
  [...companies].flatMap((c) => c.offsets.map((o) => ({ company_id: c.companyId, hours_before: o.hoursBefore })));

/** The claim items of a chunk of planned sends. */
export const claimItemsOf = (rows: readonly ReminderCandidate[]) =>
  rows.map((r) => ({ appointment_id: r.appointmentId, hours_before: r.hoursBefore, start_iso: r.startIso }));

/** The item id of a reminder in errors and logs. */
export const reminderItemId = (r: { appointmentId: number; hoursBefore: number }) => `${r.appointmentId}:${r.hoursBefore}`;

// ---------------------------------------------------------------------------------------------
// Dry-run plan items and notification rows

/** Sample items of a dry run's plan (the route keeps at most 50 in all). */
export const PLAN_SAMPLE = 50;

export const trialPlanItems = (companyIds: readonly number[]) =>
  companyIds.slice(0, 10).map((companyId) => ({ part: 'trials', action: 'expire_trial', companyId }));

export const reminderPlanItem = (row: ReminderCandidate, subject: string) => ({
  part: 'reminders',
  action: 'send_reminder',
  appointmentId: row.appointmentId,
  hoursBefore: row.hoursBefore,
  start: row.startIso,
  subject,
});

/** The employee's notification of a sent reminder, as sql-reminders.ts inserts it. */
export const notificationRowOf = (
  reminderId: number,
  n: { title: string; message: string; linkUrl: string; linkText: string; dedupeKey: string },
) => ({ reminder_id: reminderId, title: n.title, message: n.message, link_url: n.linkUrl, link_text: n.linkText, dedupe_key: n.dedupeKey });
