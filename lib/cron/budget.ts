import type { Trigger } from './types.js';

/** Kept between the budget and maxDuration: time to finish held work and answer. */
export const SAFETY_MARGIN_MS = 5_000;
/** No run gets less than this, whatever the configuration. */
export const MIN_BUDGET_MS = 1_000;
/**
 * A job's vercel.json maxDuration unless it needs another: the default and the ceiling of Hobby,
 * the default of Pro (Fluid compute). Vercel Cron, the local scheduler and fan-out shards get it
 * (minus the margin); an external ping keeps CRON_BUDGET_MS for cron-job.org's 30 s timeout.
 */
export const DEFAULT_MAX_DURATION_SEC = 300;

/**
 * Where a run's budget came from. Nobody waits on a Vercel Cron call, a local scheduler tick or a
 * fan-out shard (the coordinator waits only for its acceptance): they may use the whole function,
 * or what the platform allows of it (`platformLimit`). An external pinger (cron-job.org gives up
 * after 30 s) and a terminal keep `CRON_BUDGET_MS`.
 */
export type BudgetSource = 'maxDuration' | 'CRON_BUDGET_MS' | 'platformLimit';
export type Budget = { ms: number; source: BudgetSource };

/**
 * Nobody waits on a Netlify scheduled function or background function either. A background
 * function may run 15 min, but its run keeps the job's maxDuration: the schedules and the
 * fan-out's estimates assume a run fits it, and a longer one would only see the next calls skipped
 * (its heartbeat lease keeps it exclusive, lib/cron/runs.ts).
 */
const LONG_BUDGET_TRIGGERS: readonly Trigger[] = ['vercel-cron', 'scheduler', 'fanout', 'netlify-schedule', 'netlify-background'];

/** Limits the platform sets whatever the configuration: Netlify stops a scheduled function at 30 s (docs/netlify.md). */
export const PLATFORM_LIMIT_SEC: Partial<Record<Trigger, number>> = { 'netlify-schedule': 30 };

export function budgetFor(trigger: Trigger, cronBudgetMs: number, maxDurationSec: number): Budget {
  const platformSec = PLATFORM_LIMIT_SEC[trigger];
  const limited = platformSec !== undefined && platformSec < maxDurationSec;
  const ceiling = (limited ? platformSec : maxDurationSec) * 1000 - SAFETY_MARGIN_MS;
  if (LONG_BUDGET_TRIGGERS.includes(trigger))
    return { ms: Math.max(MIN_BUDGET_MS, ceiling), source: limited ? 'platformLimit' : 'maxDuration' };
  return { ms: Math.max(MIN_BUDGET_MS, Math.min(cronBudgetMs, ceiling)), source: 'CRON_BUDGET_MS' };
}
