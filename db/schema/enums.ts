import { pgEnum } from 'drizzle-orm/pg-core';

// Enum labels are the original Lokario's stored names (SQLAlchemy writes the member NAME).
export const subscriptionPlan = pgEnum('subscriptionplan', ['STARTER', 'PROFESSIONAL', 'ENTERPRISE']);
export const subscriptionStatus = pgEnum('subscriptionstatus', [
  'ACTIVE',
  'CANCELED',
  'PAST_DUE',
  'UNPAID',
  'INCOMPLETE',
  'INCOMPLETE_EXPIRED',
  'TRIALING',
  'PAUSED',
]);
export const quoteStatus = pgEnum('quotestatus', ['BROUILLON', 'ENVOYE', 'VU', 'ACCEPTE', 'REFUSE']);
export const invoiceType = pgEnum('invoicetype', ['FACTURE', 'AVOIR']);
export const invoiceStatus = pgEnum('invoicestatus', ['BROUILLON', 'ENVOYEE', 'PAYEE', 'IMPAYEE', 'EN_RETARD', 'ANNULEE']);
export const followupType = pgEnum('followuptype', [
  'DEVIS_NON_REPONDU',
  'FACTURE_IMPAYEE',
  'INFO_MANQUANTE',
  'RAPPEL_RDV',
  'CLIENT_INACTIF',
  'PROJET_EN_ATTENTE',
]);
export const followupStatus = pgEnum('followupstatus', ['A_FAIRE', 'FAIT', 'EN_ATTENTE']);
export const followupHistoryStatus = pgEnum('followuphistorystatus', ['ENVOYE', 'LU', 'REPONDU']);
/**
 * new: delivery state of one automatic send; `unknown` is never re-sent automatically (docs/sending.md);
 * `bounced`: accepted by SMTP, then returned as undeliverable (a hard bounce, docs/bounces.md).
 */
export const deliveryState = pgEnum('delivery_state', ['sending', 'sent', 'failed', 'unknown', 'bounced']);
export type Delivery = (typeof deliveryState.enumValues)[number];
export const notificationType = pgEnum('notificationtype', [
  'FOLLOWUP_COMPLETED',
  'QUOTE_SIGNED',
  'INVOICE_PAID',
  'FOLLOWUP_FAILED',
  'QUOTE_REJECTED',
  'INVOICE_OVERDUE',
  'TASK_OVERDUE',
  'TASK_CRITICAL',
  'APPOINTMENT_REMINDER',
  'APPOINTMENT_CANCELLED',
  'APPOINTMENT_MODIFIED',
  'APPOINTMENT_CREATED',
  // new: inbox-sync paused a mailbox after repeated login failures (docs/inbox-sync.md)
  'INBOX_INTEGRATION_PAUSED',
  // new: an OAuth mailbox's grant was revoked or expired; the company must reconnect it
  'INBOX_INTEGRATION_NEEDS_REAUTH',
  // new: an email to a client came back undeliverable (hard bounce); its follow-ups are on hold
  'EMAIL_BOUNCED',
]);
export const taskStatus = pgEnum('taskstatus', ['A_FAIRE', 'EN_COURS', 'TERMINE', 'EN_RETARD']);
export const appointmentStatus = pgEnum('appointmentstatus', [
  'SCHEDULED',
  'CONFIRMED',
  'COMPLETED',
  'CANCELLED',
  'NO_SHOW',
  'RESCHEDULE_REQUESTED',
]);
export const cronRunOutcome = pgEnum('cron_run_outcome', ['running', 'succeeded', 'partial', 'failed', 'skipped']);
