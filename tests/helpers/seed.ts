/**
 * The test seed builder for the core tables (companies, their settings and subscription, users,
 * clients, due follow-ups). The job-specific fixture files (tests/integration/*-fixtures.ts,
 * deletions-seed.ts, tests/helpers/inbox-fixtures.ts) build on it; a test states only what
 * matters to it, and the rest gets a neutral default.
 */
import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import * as schema from '../../db/schema/index.js';

let seq = 0;
/** Unique within the test process and across processes sharing one database. */
export const uniqueCode = (prefix = 'C') => `${prefix}${process.pid}-${++seq}-${Date.now()}`;

export async function insertCompany(db: Db, o: { name: string; code?: string; isActive?: boolean; slug?: string }): Promise<number> {
  const [row] = await db
    .insert(schema.companies)
    .values({
      name: o.name,
      code: o.code ?? uniqueCode(),
      ...(o.isActive !== undefined ? { isActive: o.isActive } : {}),
      ...(o.slug ? { slug: o.slug } : {}),
    })
    .returning({ id: schema.companies.id });
  return row.id;
}

export async function insertCompanySettings(db: Db, companyId: number, settings: unknown): Promise<void> {
  await db.execute(sql`insert into company_settings (company_id, settings) values (${companyId}, ${JSON.stringify(settings)}::jsonb)`);
}

export async function insertSubscription(
  db: Db,
  companyId: number,
  o: Partial<typeof schema.subscriptions.$inferInsert> = {},
): Promise<void> {
  await db.insert(schema.subscriptions).values({ companyId, ...o });
}

export async function insertClient(db: Db, companyId: number, o: { name: string; email: string | null }): Promise<number> {
  const [row] = await db.insert(schema.clients).values({ companyId, name: o.name, email: o.email }).returning({ id: schema.clients.id });
  return row.id;
}

/** One user, with a deletion request (or none). */
export async function insertUser(
  db: Db,
  values: {
    email?: string;
    companyId?: number | null;
    role?: string;
    isActive?: boolean;
    fullName?: string | null;
    deletionRequestedAt?: Date | null;
    deletionScheduledAt?: Date | null;
    deletionReminderSentAt?: Date | null;
    createdAt?: Date;
  },
): Promise<number> {
  const [row] = await db
    .insert(schema.users)
    .values({
      email: values.email ?? `u.${Math.random().toString(36).slice(2)}@example.fr`,
      companyId: values.companyId ?? null,
      role: values.role ?? 'user',
      isActive: values.isActive ?? true,
      fullName: values.fullName ?? null,
      deletionRequestedAt: values.deletionRequestedAt ?? null,
      deletionScheduledAt: values.deletionScheduledAt ?? null,
      deletionReminderSentAt: values.deletionReminderSentAt ?? null,
      ...(values.createdAt ? { createdAt: values.createdAt } : {}),
    })
    .returning({ id: schema.users.id });
  return row.id;
}

/**
 * `count` sent invoices of one client and a due automatic follow-up for each, in one set-based
 * statement (so the follow-ups share one write instant, as rows written together do). Numbers
 * are `<numberPrefix><n>`; returns the follow-up ids.
 */
export async function insertDueInvoiceFollowups(
  db: Db,
  s: { companyId: number; clientId: number },
  o: {
    count: number;
    numberPrefix: string;
    totalTtc: number;
    dueDate: string;
  },
): Promise<number[]> {
  const rows = await queryRows<{ id: number }>(
    db,
    sql`
    with inv as (
      insert into invoices (company_id, client_id, number, status, total_ttc, sent_at)
      select ${s.companyId}, ${s.clientId}, ${o.numberPrefix}::text || g, 'ENVOYEE', ${o.totalTtc}::numeric, '2026-01-01T09:00:00Z'
      from generate_series(1, ${o.count}) g
      returning id)
    insert into followups (company_id, client_id, type, source_type, source_id, source_label, due_date, status, auto_enabled)
    select ${s.companyId}, ${s.clientId}, 'FACTURE_IMPAYEE', 'invoice', inv.id, 'Facture ' || inv.id, ${o.dueDate}::timestamptz, 'A_FAIRE', true
    from inv
    returning id`,
  );
  return rows.map((r) => Number(r.id));
}
