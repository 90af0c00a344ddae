import { index, integer, numeric, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { companies } from './core.js';
import { clients } from './crm.js';
import { invoiceStatus, invoiceType, quoteStatus } from './enums.js';

const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
const money = (name: string) => numeric(name, { precision: 10, scale: 2 });

export const quotes = pgTable(
  'quotes',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id),
    clientId: integer('client_id')
      .notNull()
      .references(() => clients.id),
    number: text('number').notNull(),
    status: quoteStatus('status').notNull().default('BROUILLON'),
    sentAt: tstz('sent_at'),
    acceptedAt: tstz('accepted_at'),
    refusedAt: tstz('refused_at'),
    validUntil: tstz('valid_until'),
    totalTtc: money('total_ttc').notNull().default('0'),
    clientSignaturePath: text('client_signature_path'),
    publicToken: text('public_token').unique(),
    deletedAt: tstz('deleted_at'),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('quotes_company_status_idx').on(t.companyId, t.status),
    // foreign-key index: account deletion removes parents in bulk (docs/account-deletions.md), and each removed parent row
    // is checked against this column; without it every check scans the whole table
    index('quotes_client_idx').on(t.clientId),
  ],
);

export const invoices = pgTable(
  'invoices',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    // nullable: a deleted company's invoices are retained 10 years, detached (docs/account-deletions.md)
    companyId: integer('company_id').references(() => companies.id),
    clientId: integer('client_id').references(() => clients.id),
    number: text('number').notNull(),
    invoiceType: invoiceType('invoice_type').notNull().default('FACTURE'),
    status: invoiceStatus('status').notNull().default('IMPAYEE'),
    issueDate: tstz('issue_date').notNull().defaultNow(),
    sentAt: tstz('sent_at'),
    dueDate: tstz('due_date'),
    paidAt: tstz('paid_at'),
    totalTtc: money('total_ttc').notNull().default('0'),
    clientName: text('client_name'),
    sellerName: text('seller_name'),
    notes: text('notes'),
    archivedAt: tstz('archived_at'),
    deletedAt: tstz('deleted_at'),
    retainedUntil: tstz('retained_until'), // new
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('invoices_company_status_idx').on(t.companyId, t.status),
    index('invoices_retained_until_idx').on(t.retainedUntil),
    index('invoices_client_idx').on(t.clientId), // foreign-key index for account deletion (see quotes_client_idx)
  ],
);

export const invoiceLines = pgTable(
  'invoice_lines',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    invoiceId: integer('invoice_id')
      .notNull()
      .references(() => invoices.id, { onDelete: 'cascade' }),
    description: text('description').notNull().default(''),
    quantity: numeric('quantity', { precision: 10, scale: 2 }).notNull().default('1'),
    unitPrice: money('unit_price').notNull().default('0'),
    totalTtc: money('total_ttc').notNull().default('0'),
  },
  (t) => [index('invoice_lines_invoice_id_idx').on(t.invoiceId)],
);

export const invoicePayments = pgTable(
  'invoice_payments',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    invoiceId: integer('invoice_id')
      .notNull()
      .references(() => invoices.id, { onDelete: 'cascade' }),
    amount: money('amount').notNull(),
    paymentDate: tstz('payment_date').notNull().defaultNow(),
  },
  (t) => [index('invoice_payments_invoice_id_idx').on(t.invoiceId)],
);
