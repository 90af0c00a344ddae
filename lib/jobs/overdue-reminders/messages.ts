import { deterministicMessageId } from '../../mail/message-id.js';
import { addressOf, formatFrom } from '../../text/address.js';
import { links } from '../../links.js';
import { fillTemplate } from '../../text/template.js';
import { formatFrenchDate, formatFrenchTime } from '../../time/zone.js';
import { reminderDedupeKey, type CRITICAL_PRIORITIES, type ReminderCandidate, type ReminderCompany } from './plan.js';

/**
 * Every text of the job: the French notifications (put together in SQL by sql.ts through
 * format(), so they stay set-based), the French reminder email, and the operator-facing texts of
 * its item errors. Links are absolute from FRONTEND_URL, paths as in the original front end.
 */

// ---------------------------------------------------------------------------------------------
// Notifications

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

/** French plural of "jour" (from 2 on; the counts here are never 0). */
export const DAY_PLURAL = 's';

/** When a critical task is due, as TEXTS.taskCritical's %3$s (days from today, in the company's zone). */
export const DUE_WHEN = { today: "aujourd'hui", tomorrow: 'demain', inDays: 'dans %s jours' } as const;

export const PRIORITY_LABELS: Record<(typeof CRITICAL_PRIORITIES)[number], string> = {
  high: 'haute',
  critical: 'critique',
  urgent: 'urgente',
};

// ---------------------------------------------------------------------------------------------
// The appointment reminder email

/** The email's text when the offset has no `content` of its own. */
const DEFAULT_REMINDER_CONTENT = 'Rappel : Vous avez un rendez-vous le {date} à {time}.';

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

/**
 * The email to the client and the notification for the employee. Dates and times are in the
 * company's timezone; the Message-ID depends only on the claim key, so a retry reuses it.
 */
export function renderReminder(
  row: ReminderCandidate,
  company: ReminderCompany,
  opts: { frontendUrl: string; mailFrom: string },
): ReminderMessage {
  const offset = company.offsets.find((o) => o.hoursBefore === row.hoursBefore);
  const date = formatFrenchDate(row.start, company.timezone);
  const time = formatFrenchTime(row.start, company.timezone);
  const clientName = row.clientName?.trim() || 'Client';
  const rescheduleLink = company.rescheduleBaseUrl ? rescheduleUrl(company.rescheduleBaseUrl, row.appointmentId) : '';
  const vars: Record<string, string> = {
    date,
    time,
    client_name: clientName,
    company_name: company.name,
    appointment_type: row.typeName ?? '',
    reschedule_link: rescheduleLink,
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
    from: formatFrom(company.name, mailFromAddress),
    ...(company.email ? { replyTo: company.email } : {}),
    subject: `Rappel : votre rendez-vous du ${date} à ${time}`,
    text: lines.join('\n'),
    messageId: deterministicMessageId('appointment-reminder', [row.appointmentId, row.hoursBefore, row.start.getTime()], mailFromAddress),
    notification: {
      title: TEXTS.appointmentReminder.title,
      message: `Rappel envoyé à ${clientName} pour le rendez-vous${row.typeName ? ` « ${row.typeName} »` : ''} du ${date} à ${time}.`,
      linkUrl: links.appointments(opts.frontendUrl),
      linkText: TEXTS.appointmentReminder.linkText,
      dedupeKey: reminderDedupeKey(row.startIso, row.hoursBefore),
    },
    unknownVariables: body.unknown,
  };
}

/** `{appointment_id}` in the base URL is replaced; otherwise the id is appended as a path segment. */
export function rescheduleUrl(base: string, appointmentId: number): string {
  if (base.includes('{appointment_id}')) return base.replace(/\{appointment_id\}/g, String(appointmentId));
  return `${base.replace(/\/+$/, '')}/${appointmentId}`;
}

// ---------------------------------------------------------------------------------------------
// Operator-facing texts (item errors; English, like the logs)

export const OPERATOR_TEXTS = {
  invalidZone: 'invalid zone',
  unknownTemplateVariables: (names: readonly string[]) => `reminder template: unknown {${names.join('}, {')}}`,
  partsFailed: (count: number, detail: string) => `${count} part(s) failed (${detail}); the other parts ran`,
} as const;

/** The job's name in the console, and the `message` of its route's success body (the original backend's sentence). */
export const JOB_TEXTS = {
  label: 'Retards et rappels de rendez-vous',
  message: 'Vérification des éléments en retard et des rappels terminée avec succès',
};
