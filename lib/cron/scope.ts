import { sql, type SQL, type AnyColumn } from 'drizzle-orm';
import type { Scope } from './types.js';

/**
 * The SQL condition that restricts a query to the run's tenants: `companyId=` and
 * `shard=k&shards=n` (company_id % n = k). Every job filters its selections with it.
 */
export function scopeFilter(companyIdColumn: AnyColumn | SQL, scope: Scope): SQL {
  const parts: SQL[] = [];
  if (scope.companyId !== undefined) parts.push(sql`${companyIdColumn} = ${scope.companyId}`);
  if (scope.shard) parts.push(sql`mod(${companyIdColumn}, ${scope.shard.n}) = ${scope.shard.k}`);
  return parts.length ? sql.join(parts, sql` and `) : sql`true`;
}

/** The lease key: one lease per job, or per job and shard. */
export function leaseKey(job: string, scope: Scope): string {
  return scope.shard ? `${job}#${scope.shard.k}/${scope.shard.n}` : job;
}
