/**
 * Automatic fan-out (docs/scale.md): a run that measures more due work than one invocation can do
 * in its budget becomes a coordinator. It starts `n` shard invocations of the same deployment over
 * plain HTTP (`shard=k&shards=n`, the Bearer secret), waits only for each to be accepted (the shard
 * answers 202 once it holds its lease), records the child run ids in its `cron_runs` row and
 * answers. Each shard then runs under its own lease with the whole function's budget.
 */
import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import type { Config } from '../config.js';
import { budgetFor, type Budget } from './budget.js';
import type { ItemError, Job, JobContext, JobId, JobResult, SweepSpec } from './types.js';

/** A shard is planned to fill this share of its budget: the cost is an average, slow mailboxes,
 *  cold starts and the start jitter eat the rest. */
export const SHARD_FILL = 0.7;
/** Below this many items in the recent ledger, the per-item cost is the job's default. */
export const MIN_LEDGER_ITEMS = 20;
/** Recent runs read to estimate the per-item cost. */
export const LEDGER_RUNS = 20;
/** Between the two attempts at starting a shard (a cold start that timed out, a 502 of the edge). */
export const RETRY_PAUSE_MS = 500;
/** Shards started together spread their first logins and claims over this much time: providers
 *  see a ramp, not a burst. Small next to a shard's budget (295 s with maxDuration 300). */
export const SHARD_START_JITTER_MS = 2_000;
/** Header naming the coordinator run: marks a request as a fan-out shard. */
export const PARENT_HEADER = 'x-lokario-fanout-parent';
/** Vercel's deployment-protection bypass (set VERCEL_AUTOMATION_BYPASS_SECRET when protection is on). */
export const BYPASS_HEADER = 'x-vercel-protection-bypass';

export type FanoutPlan =
  | { kind: 'inline'; due: number; costMsPerItem: number; reason: string }
  | { kind: 'fanout'; due: number; costMsPerItem: number; n: number };

/**
 * Pure: one invocation when the due work fits in this run (its budget, and the sweep's target
 * duration), else `n` shards sized so that each finishes within the target, at most `max` (beyond
 * that, shards run longer, up to their budget; what is left waits for the next sweep, oldest first).
 */
export function planFanout(p: {
  due: number;
  costMsPerItem: number;
  ownBudgetMs: number;
  shardBudgetMs: number;
  targetMs: number;
  max: number;
}): FanoutPlan {
  const work = p.due * p.costMsPerItem;
  const base = { due: p.due, costMsPerItem: p.costMsPerItem };
  if (p.due === 0) return { kind: 'inline', ...base, reason: 'nothing due' };
  if (work <= Math.min(p.ownBudgetMs, p.targetMs) * SHARD_FILL) return { kind: 'inline', ...base, reason: 'fits in this run' };
  const n = Math.max(1, Math.min(p.max, Math.ceil(work / (Math.min(p.shardBudgetMs, p.targetMs) * SHARD_FILL))));
  return { kind: 'fanout', ...base, n };
}

/** Pure: milliseconds of one invocation per item, weighted by the runs' sizes (sum / sum). */
export function estimateCostMs(runs: { durationMs: number; items: number }[], fallbackMs: number): number {
  let ms = 0;
  let items = 0;
  for (const r of runs) {
    if (!(r.items > 0) || !(r.durationMs >= 0)) continue;
    ms += r.durationMs;
    items += r.items;
  }
  return items >= MIN_LEDGER_ITEMS ? ms / items : fallbackMs;
}

/** Pure: a start delay in [0, maxMs). */
export function startJitterMs(random: () => number, maxMs = SHARD_START_JITTER_MS): number {
  const r = random();
  return Math.min(maxMs - 1, Math.max(0, Math.floor((Number.isFinite(r) ? r : 0) * maxMs)));
}

/**
 * The deployment's own base URL: `SELF_URL` when set, else this deployment's unique URL
 * (`VERCEL_URL`: the same code as the coordinator), else the production domain, else the local
 * server's address. Null: nowhere to fan out to (the CLI).
 */
export function selfBaseUrl(
  config: Pick<Config, 'SELF_URL' | 'VERCEL_URL' | 'VERCEL_PROJECT_PRODUCTION_URL'>,
  localUrl?: string,
): string | null {
  const raw =
    config.SELF_URL ??
    (config.VERCEL_URL ? `https://${config.VERCEL_URL}` : undefined) ??
    (config.VERCEL_PROJECT_PRODUCTION_URL ? `https://${config.VERCEL_PROJECT_PRODUCTION_URL}` : undefined) ??
    localUrl;
  return raw ? raw.replace(/\/+$/, '') : null;
}

export function shardUrl(base: string, jobPath: string, k: number, n: number): string {
  return `${base}/api${jobPath}?shard=${k}&shards=${n}`;
}

export type ShardStart = { shard: number; attempts: number; status: 'accepted' | 'skipped' | 'failed'; runId?: string; error?: string };

type StartRequest = { url: string; headers: Record<string, string>; timeoutMs: number };

async function attemptStart(req: StartRequest): Promise<Omit<ShardStart, 'shard' | 'attempts'>> {
  try {
    const res = await fetch(req.url, { method: 'POST', headers: req.headers, signal: AbortSignal.timeout(req.timeoutMs) });
    const body = (await res.json().catch(() => ({}))) as { runId?: unknown; skipped?: unknown; error?: unknown };
    const runId = typeof body.runId === 'string' ? body.runId : undefined;
    if (res.status === 202 && runId) return { status: 'accepted', runId };
    // another invocation of this very shard is still working on its share: nothing lost
    if (res.status === 200 && body.skipped === true) return { status: 'skipped', runId };
    return { status: 'failed', error: `HTTP ${res.status}${typeof body.error === 'string' ? ` ${body.error}` : ''}` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `not accepted within ${req.timeoutMs} ms` : (e.cause?.code ?? e.message);
    return { status: 'failed', error: String(why).slice(0, 200) };
  }
}

/** Starts one shard; a shard that fails to start is tried once more, then reported. */
export async function startShard(shard: number, req: StartRequest, pauseMs = RETRY_PAUSE_MS): Promise<ShardStart> {
  const first = await attemptStart(req);
  if (first.status !== 'failed') return { shard, attempts: 1, ...first };
  await new Promise((r) => setTimeout(r, pauseMs));
  return { shard, attempts: 2, ...(await attemptStart(req)) };
}

/** Per-item cost of the job's recent real runs, from the ledger (one statement). */
async function ledgerCost(db: Db, job: JobId, spec: SweepSpec): Promise<number> {
  const rows = await queryRows<{ duration_ms: string | null; items: string | null }>(
    db,
    sql`
    select stats->>'durationMs' as duration_ms, stats->>${spec.itemsStat} as items from cron_runs
    where job = ${job} and not dry_run and outcome in ('succeeded', 'partial') and fanout is null
      and stats ? ${spec.itemsStat}
    order by started_at desc limit ${LEDGER_RUNS}`,
  );
  return estimateCostMs(
    rows.map((r) => ({ durationMs: Number(r.duration_ms), items: Number(r.items) })),
    spec.defaultCostMs,
  );
}

export type SweepInfo = { due: number; costMsPerItem: number };

/**
 * Measures the due work and, when it does not fit in this run, starts the shards and returns the
 * coordinator's result. Returns `result: null` when the run should do the work itself.
 */
export async function coordinateIfNeeded(
  job: Pick<Job, 'id' | 'path' | 'maxDurationSec' | 'sweep'>,
  ctx: JobContext,
  env: { budget: Budget; selfUrl: string | null },
): Promise<{ result: JobResult | null; sweep?: SweepInfo; plan?: FanoutPlan }> {
  const spec = job.sweep;
  const c = ctx.config;
  // never from a dry run (a preview without side effects is one), a shard, or a scoped run
  if (!spec || c.FANOUT !== 'auto' || ctx.dryRun || ctx.trigger === 'fanout' || ctx.scope.shard || ctx.scope.companyId !== undefined) {
    return { result: null };
  }
  const due = await spec.countDue(ctx.db, ctx.now);
  const costMsPerItem = c.FANOUT_ITEM_COST_MS ?? (await ledgerCost(ctx.db, job.id, spec));
  const shardBudgetMs = budgetFor('fanout', c.CRON_BUDGET_MS, job.maxDurationSec).ms;
  const plan = planFanout({
    due,
    costMsPerItem,
    ownBudgetMs: env.budget.ms,
    shardBudgetMs,
    targetMs: c.FANOUT_TARGET_SEC * 1000,
    max: c.FANOUT_MAX,
  });
  const sweep = { due, costMsPerItem };
  if (plan.kind === 'inline' || !env.selfUrl) {
    if (plan.kind === 'fanout') ctx.log.warn({ due }, 'fan-out needed but no URL of this deployment is known (SELF_URL): running alone');
    return { result: null, sweep, plan };
  }
  const headers: Record<string, string> = { [PARENT_HEADER]: ctx.runId, 'user-agent': 'lokario-fanout/1' };
  if (c.CRON_SECRET) headers.authorization = `Bearer ${c.CRON_SECRET}`;
  if (c.VERCEL_AUTOMATION_BYPASS_SECRET) headers[BYPASS_HEADER] = c.VERCEL_AUTOMATION_BYPASS_SECRET;
  const base = env.selfUrl;
  ctx.log.info({ due, costMsPerItem, shards: plan.n }, 'fan-out: starting shards');
  const shards = await Promise.all(
    Array.from({ length: plan.n }, (_, k) =>
      startShard(k, { url: shardUrl(base, job.path, k, plan.n), headers, timeoutMs: c.FANOUT_ACCEPT_TIMEOUT_MS }),
    ),
  );
  const failed = shards.filter((s) => s.status === 'failed');
  const fanout = {
    due,
    costMsPerItem: Math.round(costMsPerItem * 10) / 10,
    n: plan.n,
    shardBudgetMs,
    // each invocation's pool is bounded: the sweep holds at most this many (docs/scale.md)
    dbConnectionsMax: (plan.n + 1) * c.DB_POOL_MAX,
    children: shards.map((s) => ({
      shard: s.shard,
      status: s.status,
      attempts: s.attempts,
      ...(s.runId ? { runId: s.runId } : {}),
      ...(s.error ? { error: s.error } : {}),
    })),
  };
  await ctx.db.execute(sql`update cron_runs set fanout = ${JSON.stringify(fanout)}::jsonb where id = ${ctx.runId}`);
  const errors: ItemError[] = failed.map((s) => ({
    scope: 'shard',
    id: `${s.shard}/${plan.n}`,
    code: 'shard_not_started',
    message: `Le lot ${s.shard}/${plan.n} n'a pas pu être démarré (${s.error}) ; le prochain passage reprendra sa part.`,
  }));
  if (failed.length) ctx.log.error({ failed: failed.map((s) => ({ shard: s.shard, error: s.error })) }, 'fan-out: shards not started');
  return {
    sweep,
    plan,
    result: {
      stats: {
        fanout: true,
        due,
        shards: plan.n,
        shardsAccepted: shards.filter((s) => s.status === 'accepted').length,
        shardsAlreadyRunning: shards.filter((s) => s.status === 'skipped').length,
        shardsFailed: failed.length,
        childRunIds: shards.flatMap((s) => (s.runId ? [s.runId] : [])),
        costMsPerItem: fanout.costMsPerItem,
      },
      errors,
      partial: failed.length > 0,
    },
  };
}

/** The coordinator's run id when the request is a fan-out shard (only with shard=k&shards=n). */
export function fanoutParentOf(headers: Record<string, string | string[] | undefined>, scope: { shard?: unknown }): string | null {
  const v = headers[PARENT_HEADER];
  const id = typeof v === 'string' ? v.trim() : '';
  return scope.shard && /^[0-9a-f-]{8,64}$/i.test(id) ? id : null;
}

type WaitUntil = (p: Promise<unknown>) => void;
/** Vercel keeps a function alive after its response for the promises handed to waitUntil (what
 *  `@vercel/functions` reads); a plain Node server keeps running anyway. */
export function platformWaitUntil(): WaitUntil | undefined {
  const ctx = (globalThis as Record<symbol, { get?(): { waitUntil?: WaitUntil } | undefined } | undefined>)[
    Symbol.for('@vercel/request-context')
  ];
  return ctx?.get?.()?.waitUntil;
}
