/**
 * `/cron/status`'s view of the fan-out jobs (the jobs with a `sweep`, docs/scale.md): per job, the
 * last sweep (items due when it started, done by it or its shards, left, shards used, the budget
 * that applied).
 */
import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import type { Job } from './types.js';

type SweepRow = {
  id: string;
  job: string;
  outcome: string;
  started_at: string | Date;
  stats: Record<string, unknown> | null;
  fanout: { n?: number; due?: number } | null;
};
type ChildRow = { parent_run_id: string; outcome: string; stats: Record<string, unknown> | null };

export type Sweep = {
  runId: string;
  startedAt: string;
  outcome: string;
  due: number | null;
  done: number;
  left: number | null;
  shards: number;
  shardsRunning: number;
  shardsFailed: number;
  budget: { ms: unknown; source: unknown } | null;
};

/** Pure: a sweep from its own run and its shards' runs. */
export function summariseSweep(run: SweepRow, children: ChildRow[], itemsStat: string): Sweep {
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const due = run.fanout?.due ?? (typeof run.stats?.sweepDue === 'number' ? run.stats.sweepDue : null);
  const done = run.fanout ? children.reduce((n, c) => n + num(c.stats?.[itemsStat]), 0) : num(run.stats?.[itemsStat]);
  return {
    runId: run.id,
    startedAt: new Date(run.started_at).toISOString(),
    outcome: run.outcome,
    due,
    done,
    left: due === null ? null : Math.max(0, due - done),
    shards: run.fanout?.n ?? 1,
    shardsRunning: children.filter((c) => c.outcome === 'running').length,
    shardsFailed: num(run.stats?.shardsFailed) + children.filter((c) => c.outcome === 'failed').length,
    budget: run.stats && 'budgetMs' in run.stats ? { ms: run.stats.budgetMs, source: run.stats.budgetSource } : null,
  };
}

export async function readSweeps(db: Db, jobs: readonly Pick<Job, 'id' | 'sweep'>[]): Promise<Record<string, Sweep | null>> {
  const fanning = jobs.filter((j) => j.sweep);
  if (!fanning.length) return {};
  // the last real, non-shard run of each fan-out job, and the shards it started
  const runs = await queryRows<SweepRow>(
    db,
    sql`
    select distinct on (job) id, job, outcome, started_at, stats, fanout from cron_runs
    where job in (${sql.join(
      fanning.map((j) => sql`${j.id}`),
      sql`, `,
    )}) and not dry_run and parent_run_id is null
      and outcome <> 'skipped'
    order by job, started_at desc`,
  );
  const children = runs.length
    ? await queryRows<ChildRow>(
        db,
        sql`
    select parent_run_id, outcome, stats from cron_runs
    where parent_run_id in (${sql.join(
      runs.map((r) => sql`${r.id}`),
      sql`, `,
    )})`,
      )
    : [];
  const sweeps: Record<string, Sweep | null> = {};
  for (const job of fanning) {
    const run = runs.find((r) => r.job === job.id);
    sweeps[job.id] = run
      ? summariseSweep(
          run,
          children.filter((c) => c.parent_run_id === run.id),
          job.sweep!.itemsStat,
        )
      : null;
  }
  return sweeps;
}
