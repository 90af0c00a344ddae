import { getTableName, sql, type SQL } from 'drizzle-orm';
import type { AnyPgColumn, PgTable } from 'drizzle-orm/pg-core';
import { queryRows, type Executor } from '../../../db/client.js';
import { DELETION_ORDER, type DeletionStep } from '../../../db/schema/deletion-order.js';
import { invoices, users } from '../../../db/schema/index.js';

/**
 * The statements generated from DELETION_ORDER (db/schema/deletion-order.ts): one set-based
 * statement per table (never one per row), each answering its own row count, and their dry-run
 * counterparts; the purge of expired retained invoices. The other statements are in sql.ts.
 */

export const tableName = (t: PgTable) => getTableName(t);

function stepOf(table: PgTable): DeletionStep {
  const step = DELETION_ORDER.find((s) => s.table === table);
  if (!step) throw new Error(`table ${tableName(table)} is not in DELETION_ORDER`);
  return step;
}

/**
 * The rows of one company in a step's table. `deletable`: without the rows kept by legal
 * retention (and without the children of kept rows), i.e. exactly what the deletion removes.
 */
function companyRows(step: DeletionStep, companyId: number, mode: 'deletable' | 'all'): SQL {
  const c = step.company;
  if (c.by === 'parent') {
    const parent = stepOf(c.parent);
    return sql`${c.column} in (select ${c.parentKey} from ${c.parent} where ${companyRows(parent, companyId, mode)})`;
  }
  const own = sql`${c.column} = ${companyId}`;
  if (mode === 'deletable' && step.retain) return sql`${own} and not (${step.retain.keep})`;
  return own;
}

const counted = (statement: SQL) => sql`with affected as (${statement} returning 1) select count(*)::int as n from affected`;

/** Runs a `counted` statement (or any `select … as n`): its row count. */
export async function rowCount(tx: Executor, query: SQL): Promise<number> {
  const rows = await queryRows<{ n: number }>(tx, query);
  return Number(rows[0]?.n ?? 0);
}

export const deleteCompanyRows = (tx: Executor, step: DeletionStep, companyId: number) =>
  rowCount(tx, counted(sql`delete from ${step.table} where ${companyRows(step, companyId, 'deletable')}`));

/** Detaches the retained rows of a step (invoices): links and free text cleared, retention date set. */
export function detachRetained(tx: Executor, step: DeletionStep, companyId: number): Promise<number> {
  const r = step.retain;
  if (!r || step.company.by !== 'company') return Promise.resolve(0);
  const sets = [
    ...r.clear.map((col) => sql`${sql.identifier(col.name)} = null`),
    sql`${sql.identifier(r.retainedUntil.column.name)} = ${r.retainedUntil.from} + make_interval(years => ${r.retainedUntil.years})`,
  ];
  return rowCount(
    tx,
    counted(sql`update ${step.table} set ${sql.join(sets, sql`, `)}
    where ${step.company.column} = ${companyId} and (${r.keep})`),
  );
}

/** One statement of `(…) as "<p>:<table>"` count columns, answered as `{ p: { table: n } }`. */
async function countsByPrefix(db: Executor, cols: SQL[]): Promise<Record<string, Record<string, number>>> {
  const [row] = await queryRows<Record<string, number>>(db, sql`select ${sql.join(cols, sql`, `)}`);
  const out: Record<string, Record<string, number>> = {};
  for (const [k, v] of Object.entries(row ?? {})) {
    const [prefix, table] = [k.slice(0, 1), k.slice(2)];
    (out[prefix] ??= {})[table] = Number(v);
  }
  return out;
}

/** Dry run: what a whole-company deletion would remove and retain, per table (one statement). */
export async function countCompanyRows(
  db: Executor,
  companyId: number,
): Promise<{ deleted: Record<string, number>; retained: Record<string, number> }> {
  const cols: SQL[] = [];
  for (const step of DELETION_ORDER) {
    const name = tableName(step.table);
    cols.push(
      sql`(select count(*)::int from ${step.table} where ${companyRows(step, companyId, 'deletable')}) as ${sql.identifier(`d:${name}`)}`,
    );
    if (step.retain && step.company.by === 'company') {
      cols.push(
        sql`(select count(*)::int from ${step.table} where ${step.company.column} = ${companyId} and (${step.retain.keep})) as ${sql.identifier(`r:${name}`)}`,
      );
    }
  }
  const c = await countsByPrefix(db, cols);
  return { deleted: c.d ?? {}, retained: c.r ?? {} };
}

export type UserStatement = { table: string; kind: 'deleted' | 'nulled'; query: SQL };

/**
 * The statements of each table's `user` action, in the order's order. `users`: one user id (a
 * single-user deletion), or every user of a company (a whole-company deletion: what still points
 * at them from elsewhere, e.g. tasks of a company they used to work for, must not block it).
 */
export function userStatements(target: { userId: number } | { companyId: number }): UserStatement[] {
  const match = (col: AnyPgColumn) =>
    'userId' in target
      ? sql`${col} = ${target.userId}`
      : sql`${col} in (select ${users.id} from ${users} where ${users.companyId} = ${target.companyId})`;
  const out: UserStatement[] = [];
  for (const step of DELETION_ORDER) {
    const u = step.user;
    const name = tableName(step.table);
    if (u.action === 'delete' || (u.action === 'self' && 'userId' in target)) {
      out.push({ table: name, kind: 'deleted', query: counted(sql`delete from ${step.table} where ${match(u.column)}`) });
    } else if (u.action === 'nullify') {
      for (const col of u.columns) {
        out.push({
          table: name,
          kind: 'nulled',
          query: counted(sql`update ${step.table} set ${sql.identifier(col.name)} = null where ${match(col)}`),
        });
      }
    }
  }
  return out;
}

/** Dry run: what a single-user deletion would delete and null, per table (one statement). */
export async function countUserRows(
  db: Executor,
  userId: number,
): Promise<{ deleted: Record<string, number>; nulled: Record<string, number> }> {
  const cols: SQL[] = [];
  for (const step of DELETION_ORDER) {
    const u = step.user;
    const name = tableName(step.table);
    if (u.action === 'delete' || u.action === 'self') {
      cols.push(sql`(select count(*)::int from ${step.table} where ${u.column} = ${userId}) as ${sql.identifier(`d:${name}`)}`);
    } else if (u.action === 'nullify') {
      const any = sql.join(
        u.columns.map((c) => sql`${c} = ${userId}`),
        sql` or `,
      );
      cols.push(sql`(select count(*)::int from ${step.table} where ${any}) as ${sql.identifier(`n:${name}`)}`);
    }
  }
  const c = await countsByPrefix(db, cols);
  return { deleted: c.d ?? {}, nulled: c.n ?? {} };
}

/** A Postgres int[] literal for `= any(…::int[])` (ids are integers, so the literal is safe). */
export const intArray = (ids: readonly number[]) => `{${ids.map((n) => Math.trunc(Number(n))).join(',')}}`;

/** The children of invoices in the order (lines, payments): purged with their retained invoice. */
const invoiceChildren = () => DELETION_ORDER.filter((s) => s.company.by === 'parent' && s.company.parent === invoices);

/** Retained invoices past their date: claimed (SKIP LOCKED) and deleted with their children. */
export async function purgeExpiredInvoices(
  tx: Executor,
  now: Date,
  limit: number,
): Promise<{ invoices: number; rows: Record<string, number> }> {
  const claimed = await queryRows<{ id: number }>(
    tx,
    sql`
    select ${invoices.id} as id from ${invoices}
    where ${invoices.companyId} is null and ${invoices.retainedUntil} <= ${now}
    order by ${invoices.retainedUntil}, ${invoices.id} limit ${limit}
    for update skip locked`,
  );
  const rows: Record<string, number> = {};
  if (claimed.length === 0) return { invoices: 0, rows };
  const ids = intArray(claimed.map((r) => r.id));
  for (const step of invoiceChildren()) {
    const col = step.company.column;
    rows[tableName(step.table)] = await rowCount(tx, counted(sql`delete from ${step.table} where ${col} = any(${ids}::int[])`));
  }
  const n = await rowCount(tx, counted(sql`delete from ${invoices} where ${invoices.id} = any(${ids}::int[])`));
  rows[tableName(invoices)] = n;
  return { invoices: n, rows };
}

export const countExpiredInvoices = (db: Executor, now: Date) =>
  rowCount(db, sql`select count(*)::int as n from ${invoices} where ${invoices.companyId} is null and ${invoices.retainedUntil} <= ${now}`);
