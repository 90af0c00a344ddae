import { parseCompanySettings } from '../../settings.js';
import type { Delivery } from '../../../db/schema/enums.js';
export type { Delivery };
import { formatFrenchDate, formatFrenchTime } from '../../time/zone.js';
import { deterministicMessageId } from '../../mail/message-id.js';
import { checkSingleAddress, describeAddressProblem } from '../../mail/address.js';

/**
 * The pure half of the job (SPEC §5.4): given rows read from the database and the clock, decide
 * which appointment reminders go out, what they say, and why the others do not. No I/O here.
 * The notification parts are whole SQL statements (sql.ts); their French texts live here.
 */

// ---------------------------------------------------------------------------------------------
// Notification texts (reference §B.4), used by the SQL of sql.ts through format()
// ---------------------------------------------------------------------------------------------

export const TEXTS = {
  invoiceOverdue: {
    title: 'Facture en retard',
    // %1$s number, %2$s days overdue, %3$s plural "s", %4$s due date dd/mm/yyyy
    message: 'La facture %1$s est en retard de %2$s jour%3$s (échéance le %4$s).',
    linkText: 'Voir la facture',
  },
  taskOverdue: {
    title: 'Tâche en retard',
    // %1$s title, %2$s days late, %3$s plural "s", %4$s due date
    message: 'La tâche « %1$s » est en retard de %2$s jour%3$s (échéance le %4$s).',
    linkText: 'Voir les tâches',
  },
  taskCritical: {
    title: 'Tâche critique à venir',
    // %1$s title, %2$s priority label, %3$s "aujourd'hui" | "demain" | "dans N jours", %4$s due date
    message: 'La tâche « %1$s » (priorité %2$s) arrive à échéance %3$s (le %4$s).',
    linkText: 'Voir les tâches',
  },
  appointmentReminder: {
    title: 'Rappel de rendez-vous envoyé',
    linkText: 'Voir les rendez-vous',
  },
} as const;

/** Relative paths of the links, as in the original front end (reference §B.4). */
export const LINKS = {
  invoice: (frontendUrl: string, id: number) => `${trimSlash(frontendUrl)}/app/billing/invoices/${id}`,
  tasks: (frontendUrl: string) => `${trimSlash(frontendUrl)}/app/tasks`,
  appointments: (frontendUrl: string) => `${trimSlash(frontendUrl)}/app/appointments`,
};

export function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

/** Priorities that make a task "critical" (the original also accepted `urgent`). */
export const CRITICAL_PRIORITIES = ['high', 'critical', 'urgent'] as const;
export const PRIORITY_LABELS: Record<(typeof CRITICAL_PRIORITIES)[number], string> = {
  high: 'haute',
  critical: 'critique',
  urgent: 'urgente',
};

/** How far ahead a critical task is announced (SPEC §5.4.3). */
export const CRITICAL_HORIZON_HOURS = 48;
/** The overdue-invoice notification repeats once per this many days while it stays overdue (SPEC §5.4.1). */
export const OVERDUE_REPEAT_DAYS = 7;

/**
 * The overdue week of an invoice `daysOverdue` calendar days late (≥ 1): days 1–7 are week 0,
 * 8–14 week 1, … so the notification comes on the first overdue day and then every 7 days.
 * sql.ts computes the same expression in SQL; this one documents it and is unit-tested against it.
 */
export function overdueWeek(daysOverdue: number): number {
  return Math.floor((daysOverdue - 1) / OVERDUE_REPEAT_DAYS);
}

// ---------------------------------------------------------------------------------------------
// Appointment reminders
// ---------------------------------------------------------------------------------------------

export const DEFAULT_REMINDER_CONTENT = 'Rappel : Vous avez un rendez-vous le {date} à {time}.';
/** Statuses of an appointment that still takes place (SPEC §5.4.4). */
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

/** A company's reminder configuration from its settings blob (defaults of SPEC §4). */
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
      companyId, name, email: checked?.ok ? checked.address : null, invalidReplyTo: checked !== null && !checked.ok,
      timezone: settings.companyInfo.timezone,
      enabled: a.auto_reminder_enabled,
      offsets,
      rescheduleBaseUrl: a.include_reschedule_link_in_reminder && a.reschedule_base_url ? a.reschedule_base_url : null,
    },
    problems,
  };
}

/** An offset is due once its send time has come and while the appointment is still ahead. */
export function reminderIsDue(start: Date, hoursBefore: number, now: Date): boolean {
  const sendAt = start.getTime() - hoursBefore * 3_600_000;
  return now.getTime() >= sendAt && now.getTime() < start.getTime();
}


/** One (appointment, offset) whose window contains `now`, as read by sql.ts. */
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
  | 'not_due'
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
 * Decides, per (appointment, offset) candidate, whether a reminder goes out now. Sends are
 * ordered by send time (the most overdue first) and capped at `maxSends`.
 */
export function planReminders(rows: ReminderCandidate[], companies: Map<number, ReminderCompany>, now: Date, maxSends: number): ReminderPlan {
  const plan: ReminderPlan = { send: [], alreadySent: 0, inProgress: 0, unknown: 0, skipped: {}, deferred: 0, invalidRecipients: [] };
  const skip = (r: SkipReason) => { plan.skipped[r] = (plan.skipped[r] ?? 0) + 1; };
  const due: ReminderCandidate[] = [];
  for (const row of rows) {
    if (row.existingDelivery === 'sent') { plan.alreadySent++; continue; }
    if (row.existingDelivery === 'sending') { plan.inProgress++; continue; }
    if (row.existingDelivery === 'unknown') { plan.unknown++; continue; }
    if (row.existingDelivery === 'failed') { skip('failed_permanently'); continue; }
    if (row.existingDelivery === 'bounced' || row.clientAddressBounced) { skip('bounced'); continue; }
    const company = companies.get(row.companyId);
    if (!reminderIsDue(row.start, row.hoursBefore, now)) { skip('not_due'); continue; }
    if (row.status === 'CANCELLED') { skip('appointment_cancelled'); continue; }
    if (!(REMINDABLE_STATUSES as readonly string[]).includes(row.status)) { skip('appointment_not_active'); continue; }
    if (!company || !company.enabled) { skip('reminders_disabled'); continue; }
    if (!row.clientEmail?.trim()) { skip('no_client_email'); continue; }
    const to = checkSingleAddress(row.clientEmail);
    if (!to.ok) {
      skip('invalid_client_email');
      plan.invalidRecipients.push({
        appointmentId: row.appointmentId, hoursBefore: row.hoursBefore,
        message: describeAddressProblem(`client email of appointment ${row.appointmentId}`, row.clientEmail, to.reason),
      });
      continue;
    }
    // the company was told once (settings_invalid); its reminders wait until the address is fixed
    if (company.invalidReplyTo) { skip('invalid_reply_to'); continue; }
    due.push(row);
  }
  due.sort((a, b) => sendTime(a) - sendTime(b) || a.appointmentId - b.appointmentId || b.hoursBefore - a.hoursBefore);
  plan.send = due.slice(0, Math.max(0, maxSends));
  plan.deferred = due.length - plan.send.length;
  return plan;
}

const sendTime = (r: ReminderCandidate) => r.start.getTime() - r.hoursBefore * 3_600_000;

export type ReminderMessage = {
  to: string;
  from: string;
  replyTo?: string;
  subject: string;
  text: string;
  messageId: string;
  notification: { title: string; message: string; linkUrl: string; linkText: string; dedupeKey: string };
  unknownVariables: string[];
};

/** Replaces `{name}` variables; unknown ones stay visible and are reported. */
export function fillTemplate(template: string, vars: Record<string, string>): { text: string; unknown: string[] } {
  const unknown: string[] = [];
  const text = template.replace(/\{([a-z_]+)\}/g, (m, name: string) => {
    if (name in vars) return vars[name];
    unknown.push(name);
    return m;
  });
  return { text, unknown };
}

/** `Name <addr>` → `addr`; a bare address stays as it is. */
export function addressOf(from: string): string {
  const m = /<([^>]+)>/.exec(from);
  return (m ? m[1] : from).trim();
}

/** A display name safe inside double quotes (nodemailer encodes non-ASCII). */
function quotedName(name: string): string {
  return `"${name.replace(/["\\\r\n]/g, ' ').trim()}"`;
}

/** The dedupe key of a reminder notification: one per (offset, start time) of an appointment. */
export function reminderDedupeKey(startIso: string, hoursBefore: number): string {
  return `start:${startIso};h:${hoursBefore}`;
}

/**
 * The email to the client and the notification for the employee. Dates and times are in the
 * company's timezone; the Message-ID depends only on the claim key, so a retry reuses it.
 */
export function renderReminder(row: ReminderCandidate, company: ReminderCompany, opts: { frontendUrl: string; mailFrom: string }): ReminderMessage {
  const offset = company.offsets.find((o) => o.hoursBefore === row.hoursBefore);
  const date = formatFrenchDate(row.start, company.timezone);
  const time = formatFrenchTime(row.start, company.timezone);
  const clientName = row.clientName?.trim() || 'Client';
  const rescheduleLink = company.rescheduleBaseUrl ? rescheduleUrl(company.rescheduleBaseUrl, row.appointmentId) : '';
  const vars: Record<string, string> = {
    date, time, client_name: clientName, company_name: company.name,
    appointment_type: row.typeName ?? '', reschedule_link: rescheduleLink,
  };
  const custom = offset?.content ?? null;
  const body = fillTemplate(custom ?? DEFAULT_REMINDER_CONTENT, vars);
  const lines: string[] = [];
  if (!custom) lines.push(`Bonjour ${clientName},`, '');
  lines.push(body.text);
  if (rescheduleLink && !(custom ?? '').includes('{reschedule_link}')) {
    lines.push('', `Pour déplacer votre rendez-vous : ${rescheduleLink}`);
  }
  lines.push('', 'Cordialement,', company.name);
  const mailFromAddress = addressOf(opts.mailFrom);
  return {
    to: row.clientEmail!.trim(),
    from: `${quotedName(company.name)} <${mailFromAddress}>`,
    ...(company.email ? { replyTo: company.email } : {}),
    subject: `Rappel : votre rendez-vous du ${date} à ${time}`,
    text: lines.join('\n'),
    messageId: deterministicMessageId('appointment-reminder', [row.appointmentId, row.hoursBefore, row.start.getTime()], mailFromAddress),
    notification: {
      title: TEXTS.appointmentReminder.title,
      message: `Rappel envoyé à ${clientName} pour le rendez-vous${row.typeName ? ` « ${row.typeName} »` : ''} du ${date} à ${time}.`,
      linkUrl: LINKS.appointments(opts.frontendUrl),
      linkText: TEXTS.appointmentReminder.linkText,
      dedupeKey: reminderDedupeKey(row.startIso, row.hoursBefore),
    },
    unknownVariables: body.unknown,
  };
}

/** `{appointment_id}` in the base URL is replaced; otherwise the id is appended as a path segment. */
export function rescheduleUrl(base: string, appointmentId: number): string {
  if (base.includes('{appointment_id}')) return base.replace(/\{appointment_id\}/g, String(appointmentId));
  return `${trimSlash(base)}/${appointmentId}`;
}
