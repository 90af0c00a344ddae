import { z } from 'zod';
import type { Config } from '../config.js';
import type { Scope } from './types.js';

const flag = z.enum(['1', '0', 'true', 'false', 'yes', 'no', '']).transform((v) => v === '1' || v === 'true' || v === 'yes');
/**
 * companies.id (like every id) is a PostgreSQL `integer`: a larger value can match no row and
 * would fail the statement (22003, out of range), so it is refused here as a 400 rather than
 * running a job that answers 500 and counts as a failed run in /cron/status.
 */
export const INT4_MAX = 2_147_483_647;
// at most 10 digits before Number(): a 400-digit value must not become Infinity or lose digits
const intParam = z
  .string()
  .regex(/^\d{1,10}$/, 'must be a non-negative integer of at most 10 digits')
  .transform(Number);

const QuerySchema = z
  .object({
    dryRun: flag.optional(),
    companyId: intParam.pipe(z.number().int().positive().max(INT4_MAX, `must be at most ${INT4_MAX} (a PostgreSQL integer)`)).optional(),
    shard: intParam.optional(),
    shards: intParam.pipe(z.number().int().min(1).max(64)).optional(),
    now: z.iso.datetime({ offset: true, message: 'must be an ISO-8601 instant with a zone, e.g. 2026-03-29T01:30:00Z' }).optional(),
  })
  .superRefine((q, ctx) => {
    if ((q.shard === undefined) !== (q.shards === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['shard'], message: 'shard and shards go together' });
    } else if (q.shard !== undefined && q.shards !== undefined && q.shard >= q.shards) {
      ctx.addIssue({ code: 'custom', path: ['shard'], message: 'must satisfy 0 <= shard < shards <= 64' });
    }
  });

export type RunParams = { dryRun: boolean; scope: Scope; nowOverride?: Date };

export class BadRequestError extends Error {
  readonly code = 'bad_request';
  constructor(readonly issues: { path: string; message: string }[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('; '));
  }
}

const KNOWN = ['dryRun', 'companyId', 'shard', 'shards', 'now'] as const;

/**
 * Validates the query string (docs/contract.md, parameters). Unknown parameters are ignored (`secret` among them);
 * a repeated known parameter is a 400, never a silent pick.
 */
export function parseRunParams(query: Record<string, string | string[] | undefined>, config: Config): RunParams {
  const picked: Record<string, unknown> = {};
  for (const k of KNOWN) if (query[k] !== undefined) picked[k] = query[k];
  const res = QuerySchema.safeParse(picked);
  if (!res.success) {
    throw new BadRequestError(res.error.issues.map((i) => ({ path: i.path.join('.') || '(query)', message: i.message })));
  }
  const q = res.data;
  if (q.now !== undefined && config.isProductionLike) {
    throw new BadRequestError([{ path: 'now', message: 'the clock override is accepted only in local development' }]);
  }
  const scope: Scope = {};
  if (q.companyId !== undefined) scope.companyId = q.companyId;
  if (q.shard !== undefined && q.shards !== undefined) scope.shard = { k: q.shard, n: q.shards };
  return { dryRun: q.dryRun ?? false, scope, nowOverride: q.now ? new Date(q.now) : undefined };
}
