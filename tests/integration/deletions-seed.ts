import { getTableColumns, getTableName, is, sql } from 'drizzle-orm';
import { PgTable, getTableConfig, type PgColumn } from 'drizzle-orm/pg-core';
import * as schema from '../../db/schema/index.js';
import { GLOBAL_TABLES } from '../../db/schema/deletion-order.js';
import { queryRows, type Db } from '../../db/client.js';
import { randomUUID } from 'node:crypto';
import type { Config } from '../../lib/config.js';
import type { JobContext } from '../../lib/cron/types.js';
import { createLogger } from '../../lib/log.js';
import { createMailFactory, type MailFactory } from '../../lib/mail/transport.js';
import { insertCompany as seedInsertCompany } from '../helpers/seed.js';

/**
 * Test data for account deletion, generated from the drizzle schema itself: every table of the
 * schema (global ones aside) gets rows for the tenant, foreign keys (nullable ones too) pointing at
 * the tenant's own rows. A table added to the schema is seeded without anyone writing a seeder, so
 * the coverage test notices when the deletion order forgets it.
 */

export const schemaTables: PgTable[] = (Object.values(schema) as unknown[]).filter((v): v is PgTable => is(v, PgTable));
export const tenantTables = () => schemaTables.filter((t) => !GLOBAL_TABLES.includes(getTableName(t)));

export type SeededIds = Map<string, number[]>;
export type RowOverrides = Record<string, (ids: SeededIds) => Record<string, unknown>[]>;

/** Parents before children (foreign keys), so every reference can be filled. */
function topological(tables: PgTable[]): PgTable[] {
  const byName = new Map(tables.map((t) => [getTableName(t), t]));
  const out: PgTable[] = [];
  const seen = new Set<string>();
  const visit = (t: PgTable, path: string[]) => {
    const name = getTableName(t);
    if (seen.has(name)) return;
    if (path.includes(name)) throw new Error(`foreign-key cycle: ${[...path, name].join(' → ')}`);
    for (const fk of getTableConfig(t).foreignKeys) {
      const parent = byName.get(getTableName(fk.reference().foreignTable));
      if (parent && parent !== t) visit(parent, [...path, name]);
    }
    seen.add(name);
    out.push(t);
  };
  for (const t of tables) visit(t, []);
  return out;
}

let counter = 0;

/** Columns under a check constraint and without a default: a value the constraint accepts. */
const CHECKED_VALUES: Record<string, Record<string, unknown>> = { send_bounces: { outcome: 'ignored' } };

function generated(table: string, key: string, col: PgColumn, tag: string, now: Date): unknown {
  const n = ++counter;
  const enumValues = (col as unknown as { enumValues?: string[] }).enumValues;
  if (enumValues?.length) return enumValues[0];
  if (col.columnType === 'PgNumeric') return '12.50';
  switch (col.dataType) {
    case 'string':
      return `${table}.${key}.${tag}.${n}`;
    case 'number':
      return n;
    case 'bigint':
      return BigInt(n);
    case 'boolean':
      return false;
    case 'date':
      return now;
    case 'json':
      return { seeded: tag };
    case 'custom':
      return Buffer.from(`${table}.${key}.${tag}`);
    default:
      throw new Error(`seed: no generator for ${table}.${key} (${col.dataType}/${col.columnType})`);
  }
}

/** Seeds one tenant: a company and rows in every tenant table. Returns the ids per table. */
export async function seedTenant(
  db: Db,
  tag: string,
  now: Date,
  overrides: RowOverrides = {},
): Promise<{ companyId: number; ids: SeededIds }> {
  const ids: SeededIds = new Map();
  for (const table of topological(tenantTables())) {
    const name = getTableName(table);
    const cfg = getTableConfig(table);
    const columns = getTableColumns(table);
    const fkOf = new Map<PgColumn, string>();
    for (const fk of cfg.foreignKeys) {
      const r = fk.reference();
      fkOf.set(r.columns[0], getTableName(r.foreignTable));
    }
    const base = (overrides[name]?.(ids) ?? [{}]).map((row) => ({ ...CHECKED_VALUES[name], ...row }));
    const rows = base.map((row) => {
      const out: Record<string, unknown> = { ...row };
      for (const [key, col] of Object.entries(columns)) {
        if (key in out) continue;
        if (col.primary && (col as unknown as { generatedIdentity?: unknown }).generatedIdentity) continue;
        const parent = fkOf.get(col);
        if (parent) {
          const parentIds = ids.get(parent);
          if (parentIds?.length) out[key] = parentIds[0];
          else if (col.notNull) throw new Error(`seed: ${name}.${col.name} needs a ${parent} row`);
          continue;
        }
        if (col.notNull && !col.hasDefault) out[key] = generated(name, key, col, tag, now);
      }
      return out;
    });
    const pk = Object.entries(columns).find(([, c]) => c.primary);
    if (!pk) throw new Error(`seed: ${name} has no single-column primary key`);
    const inserted = (await db
      .insert(table)
      .values(rows as never)
      .returning()) as Record<string, unknown>[];
    ids.set(
      name,
      inserted.map((r) => Number(r[pk[0]])),
    );
  }
  return { companyId: ids.get('companies')![0], ids };
}

/** md5 of every row (row_to_json) of every tenant table, except the given ids: "nothing else changed". */
export async function checksumExcept(db: Db, exclude: SeededIds): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of tenantTables()) {
    const name = getTableName(table);
    const skip = `{${(exclude.get(name) ?? []).join(',')}}`;
    const [row] = await queryRows<{ sum: string; n: number }>(
      db,
      sql`
      select md5(coalesce(string_agg(row_to_json(t)::text, '|' order by t.id), '')) as sum, count(*)::int as n
      from ${sql.identifier(name)} t where t.id <> all(${skip}::int[])`,
    );
    out[name] = `${row.n}:${row.sum}`;
  }
  return out;
}

/** The given ids that still exist, per table (empty tables left out). */
export async function remainingRows(db: Db, ids: SeededIds): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [name, list] of ids) {
    const rows = await queryRows<{ id: number }>(
      db,
      sql`select id from ${sql.identifier(name)} where id = any(${`{${list.join(',')}}`}::int[]) order by id`,
    );
    if (rows.length) out[name] = rows.map((r) => Number(r.id));
  }
  return out;
}

export const DAY_MS = 86_400_000;

/** A tenant whose only active user asked for deletion 31 days ago (due yesterday). */
export function dueOwnerCompany(tag: string, now: Date): RowOverrides {
  return {
    companies: () => [{ name: `Entreprise ${tag}`, code: `code-${tag}-${Date.now()}-${Math.random()}` }],
    company_settings: () => [{ settings: { company_info: { timezone: 'Europe/Paris', email: `contact@${tag}.example` } } }],
    users: () => [
      {
        email: `owner.${tag}.${Math.random().toString(36).slice(2)}@example.fr`,
        fullName: `Patronne ${tag}`,
        role: 'owner',
        deletionRequestedAt: new Date(now.getTime() - 31 * DAY_MS),
        deletionScheduledAt: new Date(now.getTime() - DAY_MS),
        createdAt: new Date(now.getTime() - 900 * DAY_MS),
      },
      // a deactivated former employee: does not keep the company alive, and goes with it
      { email: `former.${tag}.${Math.random().toString(36).slice(2)}@example.fr`, role: 'user', isActive: false },
    ],
    invoices: () => [
      {
        number: `FAC-${tag}-1`,
        status: 'PAYEE',
        issueDate: new Date('2025-06-15T10:00:00Z'),
        clientName: 'Client SARL',
        sellerName: `Entreprise ${tag}`,
        notes: 'Code porte 1234, demander Mme Dupont',
        totalTtc: '1200.00',
      },
      { number: `FAC-${tag}-2`, status: 'BROUILLON', notes: 'brouillon' },
    ],
    invoice_lines: (ids) => ids.get('invoices')!.map((invoiceId) => ({ invoiceId, description: 'Prestation' })),
    invoice_payments: (ids) => ids.get('invoices')!.map((invoiceId) => ({ invoiceId, amount: '100.00' })),
    quotes: () => [{ number: `DEV-${tag}-1`, status: 'VU' }], // viewed, unsigned (defect 29)
    inbox_integrations: () => [{ name: 'Boîte principale', emailAddress: `box@${tag}.example`, emailPassword: 'gAAAAABsecret-token' }],
    notifications: (ids) => [
      { userId: ids.get('users')![0], type: 'TASK_OVERDUE', title: 'Tâche', message: 'en retard' },
      { userId: null, type: 'INVOICE_OVERDUE', title: 'Facture', message: 'en retard' },
    ],
    message_attachments: () => [{ name: 'contrat.pdf', content: Buffer.from('%PDF-1.4 données personnelles') }],
  };
}

/** A tenant that stays: users without any request. */
export function livingCompany(tag: string): RowOverrides {
  return {
    companies: () => [{ name: `Entreprise ${tag}`, code: `code-${tag}-${Date.now()}-${Math.random()}` }],
    users: () => [{ email: `owner.${tag}.${Math.random().toString(36).slice(2)}@example.fr`, role: 'owner' }],
  };
}

/**
 * A job context built by hand, to call the job function directly (beyond the lease: the
 * concurrency tests fire several at once, as misconfigured shards or a double delivery would).
 */
export function handBuiltContext(db: Db, config: Config, now: Date, over: Partial<JobContext> = {}): JobContext & { mail: MailFactory } {
  return {
    db,
    now,
    deadline: Date.now() + 120_000,
    dryRun: false,
    scope: {},
    log: createLogger({ level: 'silent' }),
    mail: createMailFactory(config),
    config,
    runId: randomUUID(),
    trigger: 'http',
    ...over,
  };
}

export { insertUser } from '../helpers/seed.js';

export async function insertCompany(db: Db, name = 'Entreprise'): Promise<number> {
  return seedInsertCompany(db, { name, code: `c-${randomUUID()}` });
}

/** A request due at `now` (asked 31 days earlier). */
export const dueRequest = (now: Date) => ({
  deletionRequestedAt: new Date(now.getTime() - 31 * DAY_MS),
  deletionScheduledAt: new Date(now.getTime() - DAY_MS),
});
