/**
 * The billing rules several jobs share, as SQL fragments over an `invoices` row (its alias):
 * what an invoice has been paid, and when it is an issued invoice still owing money (follow-ups
 * create a relance for it, overdue-reminders notify it). One definition, so the two can't drift.
 */
import { sql, type SQL } from 'drizzle-orm';

/** The sum of the invoice's payments (0 when none). */
export function invoicePaid(invoice: string): SQL {
  return sql`coalesce((select sum(pay.amount) from invoice_payments pay where pay.invoice_id = ${sql.identifier(invoice)}.id), 0)`;
}

/** Issued (sent, unpaid or late), neither deleted nor archived, with a balance left. */
export function openIssuedInvoice(invoice: string): SQL {
  const i = sql.identifier(invoice);
  return sql`${i}.invoice_type = 'FACTURE' and ${i}.status in ('ENVOYEE', 'IMPAYEE', 'EN_RETARD')
    and ${i}.deleted_at is null and ${i}.archived_at is null
    and ${i}.total_ttc - ${invoicePaid(invoice)} > 0`;
}
