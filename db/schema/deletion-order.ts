import { sql, type SQL } from 'drizzle-orm';
import type { AnyPgColumn, PgTable } from 'drizzle-orm/pg-core';
import { companies, companySettings, subscriptions, users } from './core.js';
import { clients } from './crm.js';
import { invoiceLines, invoicePayments, invoices, quotes } from './billing.js';
import { conversations, inboxIntegrations, inboxMessages, inboxPoisonMessages, messageAttachments } from './inbox.js';
import { followupCreations, followupHistory, followups } from './followups.js';
import { appointmentReminders, appointmentTypes, appointments, notifications, tasks } from './work.js';
import { sendBounces } from './bounces.js';

/**
 * Account deletion (docs/account-deletions.md): the ONE ordered list of every company- or user-scoped table,
 * children before parents, with how each table's rows are found for a company and for a user.
 *
 * Adding a table to the schema without adding it here makes the schema-coverage test
 * (tests/integration/deletions-coverage.test.ts) fail, naming the table. Tables that belong to no
 * company and no user are listed in GLOBAL_TABLES instead.
 */

/** How the rows of one company are found in a table. */
export type CompanyRows =
  /** `column = company id` */
  | { by: 'company'; column: AnyPgColumn }
  /** `column in (keys of the parent table's rows of that company)`; kept when their parent is retained */
  | { by: 'parent'; column: AnyPgColumn; parent: PgTable; parentKey: AnyPgColumn }
  /** the `companies` row itself */
  | { by: 'id'; column: AnyPgColumn };

/**
 * Legal retention (French law keeps invoices 10 years): rows matching `keep` are detached from
 * the company instead of deleted, stripped of personal data outside the legal mentions, and
 * purged by the same job once `retainedUntil` has passed.
 */
export type Retention = {
  keep: SQL;
  /** set to null on the retained rows: the links to the deleted company, and free text */
  clear: AnyPgColumn[];
  retainedUntil: { column: AnyPgColumn; from: AnyPgColumn; years: number };
};

/** What a single-user deletion (in a company that keeps other users) does to a table. */
export type UserRows =
  /** delete the rows whose column is the user's id */
  | { action: 'delete'; column: AnyPgColumn }
  /** set these columns to null where they hold the user's id (assignments, authorship) */
  | { action: 'nullify'; columns: AnyPgColumn[] }
  /** the users table: the row itself */
  | { action: 'self'; column: AnyPgColumn }
  /** no column of this table refers to a user */
  | { action: 'none' };

export type DeletionStep = {
  table: PgTable;
  company: CompanyRows;
  retain?: Retention;
  user: UserRows;
};

const none: UserRows = { action: 'none' };

/** Legal retention period of an invoice (Code de commerce L123-22: ten years). */
export const INVOICE_RETENTION_YEARS = 10;

/**
 * Invoices that were never issued (drafts) are not legal records: they are deleted with the
 * company. Every issued invoice (sent, paid, unpaid, late, cancelled, credit notes) is retained.
 */
export const RETAINED_INVOICE = sql`${invoices.status} <> 'BROUILLON'`;

export const DELETION_ORDER: readonly DeletionStep[] = [
  // inbox: attachments → messages → poison records → follow-up history (points at conversations)
  {
    table: messageAttachments,
    company: { by: 'parent', column: messageAttachments.messageId, parent: inboxMessages, parentKey: inboxMessages.id },
    user: none,
  },
  { table: inboxMessages, company: { by: 'company', column: inboxMessages.companyId }, user: none },
  // bounces acted on: the company's record of addresses that bounced (docs/bounces.md)
  { table: sendBounces, company: { by: 'company', column: sendBounces.companyId }, user: none },
  { table: inboxPoisonMessages, company: { by: 'company', column: inboxPoisonMessages.companyId }, user: none },
  { table: followupHistory, company: { by: 'company', column: followupHistory.companyId }, user: none },
  { table: followups, company: { by: 'company', column: followups.companyId }, user: none },
  // the record that stops the automatic job from re-creating a follow-up a user deleted
  { table: followupCreations, company: { by: 'company', column: followupCreations.companyId }, user: none },
  { table: conversations, company: { by: 'company', column: conversations.companyId }, user: none },
  // mailbox credentials go with the company: the original left them behind
  { table: inboxIntegrations, company: { by: 'company', column: inboxIntegrations.companyId }, user: none },
  {
    table: notifications,
    company: { by: 'company', column: notifications.companyId },
    user: { action: 'delete', column: notifications.userId },
  },
  { table: appointmentReminders, company: { by: 'company', column: appointmentReminders.companyId }, user: none },
  {
    table: appointments,
    company: { by: 'company', column: appointments.companyId },
    user: { action: 'nullify', columns: [appointments.employeeId] },
  },
  { table: appointmentTypes, company: { by: 'company', column: appointmentTypes.companyId }, user: none },
  { table: tasks, company: { by: 'company', column: tasks.companyId }, user: { action: 'nullify', columns: [tasks.assignedToId] } },
  { table: quotes, company: { by: 'company', column: quotes.companyId }, user: none },
  // invoices: lines and payments follow their invoice (deleted with a draft, kept with a retained one)
  {
    table: invoicePayments,
    company: { by: 'parent', column: invoicePayments.invoiceId, parent: invoices, parentKey: invoices.id },
    user: none,
  },
  { table: invoiceLines, company: { by: 'parent', column: invoiceLines.invoiceId, parent: invoices, parentKey: invoices.id }, user: none },
  {
    table: invoices,
    company: { by: 'company', column: invoices.companyId },
    retain: {
      keep: RETAINED_INVOICE,
      // number, type, status, dates, amounts and the seller/client legal names are legal
      // mentions and stay; the free-text notes and the links to the deleted rows go
      clear: [invoices.companyId, invoices.clientId, invoices.notes],
      retainedUntil: { column: invoices.retainedUntil, from: invoices.issueDate, years: INVOICE_RETENTION_YEARS },
    },
    user: none,
  },
  { table: clients, company: { by: 'company', column: clients.companyId }, user: none },
  { table: subscriptions, company: { by: 'company', column: subscriptions.companyId }, user: none },
  { table: companySettings, company: { by: 'company', column: companySettings.companyId }, user: none },
  // every user of the company, inactive ones included; the requesting user's row goes with them
  { table: users, company: { by: 'company', column: users.companyId }, user: { action: 'self', column: users.id } },
  { table: companies, company: { by: 'id', column: companies.id }, user: none },
];

/**
 * Tables that belong to no company and no user: the run ledger, the leases, and the deletion log
 * itself (which holds no personal data), and the operators' action log (operators, not tenants).
 */
export const GLOBAL_TABLES: readonly string[] = [
  'cron_runs',
  'cron_leases',
  'account_deletion_log',
  'operator_actions',
  'mail_sends',
  'bounce_mailbox_cursors',
];
