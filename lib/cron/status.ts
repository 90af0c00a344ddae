import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import type { Registry } from './jobs.js';
import { readMissedRuns, scheduleIntervalMs, type MissedVerdict } from './schedule.js';
import type { AttentionSource, EmailAttention, Job, JobId } from './types.js';

/**
 * A run still `running` without a live lease this long after it started has died (its process
 * was killed): it is shown as failed. The grace covers the instant between the run's ledger row
 * and its lease.
 */
export const CRASHED_RUN_GRACE_SEC = 10;
/** Error shown for such a run (the same text a takeover writes, lib/cron/runs.ts). */
export { CRASHED_RUN_ERROR };

/** Crash residue of a job's emails: sends in `unknown` and claims left `sending` past the stale timeout. */
export type Attention = EmailAttention;
import { readSweeps, type Sweep } from './sweep.js';
import { CRASHED_RUN_ERROR } from './runs.js';

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;
type SectionsOf<T> = T extends { attention?(db: Db, now: Date): Promise<{ sections: infer S }> }
  ? S
  : T extends (db: Db, now: Date) => Promise<{ sections: infer S }>
    ? S
    : never;

/**
 * The status body: the runner's fields, then the sections of every registered job's attention
 * and of the registry's other sources (bounces), typed from the registry it was read with.
 */
export type Status<J extends Job = Job, A extends AttentionSource = AttentionSource> = {
  healthy: boolean;
  jobs: JobHealth[];
  sweeps: Record<string, Sweep | null>;
} & UnionToIntersection<SectionsOf<J> | SectionsOf<A>>;

type RunRow = {
  job: string;
  outcome: string;
  started_at: Date;
  finished_at: Date | null;
  stats: unknown;
  error: string | null;
  rn: number;
};

export type JobHealth = {
  job: JobId;
  schedule: string;
  health: 'healthy' | 'degraded' | 'unhealthy' | 'unknown' | 'missed';
  healthy: boolean | null;
  reason?: string;
  /** Emails a person must check (never re-sent automatically), for the jobs that send. */
  attention?: Attention;
  lastRun: null | { outcome: string; startedAt: string; durationMs: number | null; stats: unknown; error: string | null };
  lastSuccessAt: string | null;
  /** The schedule stopped firing (lib/cron/schedule.ts); overrides `health`. */
  missed: MissedVerdict;
};

/**
 * Pure health rule (docs/contract.md), given a job's latest non-dry, non-skipped runs (newest first) and
 * its last success: unhealthy when the last success is older than three schedule intervals, or
 * the last three runs failed; `unknown` when it has never run.
 */
export function judgeHealth(runs: { outcome: string; startedAt: Date }[], lastSuccessAt: Date | null, intervalMs: number, now: Date) {
  if (runs.length === 0 && !lastSuccessAt) return { health: 'unknown' as const };
  if (runs.length >= 3 && runs.slice(0, 3).every((r) => r.outcome === 'failed')) {
    return { health: 'unhealthy' as const, reason: 'the last three runs failed' };
  }
  const reference = lastSuccessAt ?? runs[runs.length - 1]?.startedAt ?? now;
  if (now.getTime() - reference.getTime() > 3 * intervalMs) {
    return {
      health: 'unhealthy' as const,
      reason: lastSuccessAt ? 'no success for more than three schedule intervals' : 'never succeeded',
    };
  }
  return { health: 'healthy' as const };
}

/**
 * A job that would be healthy but has crash residue (attention) is `degraded`: not healthy, the
 * status answers 503 (docs/sending.md: an `unknown` email needs a person, so it must page).
 */
export function withAttention<T extends { health: JobHealth['health']; reason?: string }>(verdict: T, attention: Attention | undefined): T {
  if (!attention || (attention.unknownSends === 0 && attention.staleClaims === 0) || verdict.health === 'unhealthy') return verdict;
  const parts = [
    attention.unknownSends
      ? `${attention.unknownSends} email(s) in an unknown state (check the recipients' mailboxes, then mark them)`
      : '',
    attention.staleClaims ? `${attention.staleClaims} claim(s) left sending by a run that died (the next run clears them)` : '',
  ].filter(Boolean);
  return { ...verdict, health: 'degraded', reason: parts.join('; ') };
}

export async function readStatus<J extends Job, A extends AttentionSource>(
  db: Db,
  now: Date,
  registry: Registry<J, A>,
): Promise<Status<J, A>> {
  // the last three counted runs of each job, and each job's last success, in two statements; a
  // run left `running` by a dead process (no live lease) counts as failed
  const runs = await queryRows<RunRow>(
    db,
    sql`
    select * from (
      select job, outcome, started_at, finished_at, stats, error,
             row_number() over (partition by job order by started_at desc) as rn
      from (
        select c.job, case when c.outcome = 'running' then 'failed' else c.outcome::text end as outcome,
               c.started_at, c.finished_at, c.stats,
               case when c.outcome = 'running' then ${CRASHED_RUN_ERROR} else c.error end as error
        from cron_runs c
        where not c.dry_run and (c.outcome in ('succeeded', 'partial', 'failed')
          or (c.outcome = 'running' and c.finished_at is null
              and c.started_at < now() - make_interval(secs => ${CRASHED_RUN_GRACE_SEC})
              and not exists (select 1 from cron_leases l where l.holder = c.id and l.expires_at > now())))
      ) c
    ) r where rn <= 3`,
  );
  const successes = await queryRows<{ job: string; at: Date }>(
    db,
    sql`
    select job, max(started_at) as at from cron_runs
    where not dry_run and outcome in ('succeeded', 'partial') group by job`,
  );
  // each job reads what of it needs a person from its own tables (lib/jobs/<job>/attention.ts);
  // the registry's other sources (bounces) add their sections the same way
  const attentionOf: Record<JobId, Attention> = {};
  const sections: Record<string, unknown> = {};
  let sectionsHealthy = true;
  const merge = (a: { sections: Record<string, unknown>; healthy?: boolean }) => {
    if (a.healthy === false) sectionsHealthy = false;
    Object.assign(sections, a.sections);
  };
  for (const job of registry.jobs) {
    if (!job.attention) continue;
    const a = await job.attention(db, now);
    if (a.emails) attentionOf[job.id] = a.emails;
    merge(a);
  }
  for (const read of registry.attention) merge(await read(db, now));

  const missedRuns = await readMissedRuns(db, now, registry.jobs);

  const jobs: JobHealth[] = registry.jobs.map(({ id, schedule }) => {
    const mine = runs.filter((r) => r.job === id).sort((a, b) => a.rn - b.rn);
    const s = successes.find((x) => x.job === id);
    const lastSuccess = s?.at ? new Date(s.at) : null;
    const judged = withAttention(
      judgeHealth(
        mine.map((r) => ({ outcome: r.outcome, startedAt: new Date(r.started_at) })),
        lastSuccess,
        scheduleIntervalMs(schedule, now),
        now,
      ),
      attentionOf[id],
    );
    const last = mine[0];
    const missed = missedRuns[id];
    const verdict: { health: JobHealth['health']; reason?: string } = missed.missed
      ? { health: 'missed', reason: `no scheduled run since ${missed.windowStart} (expected ${missed.expected.join(', ')})` }
      : judged;
    return {
      job: id,
      schedule,
      health: verdict.health,
      healthy: verdict.health === 'unknown' ? null : verdict.health === 'healthy',
      ...(verdict.reason ? { reason: verdict.reason } : {}),
      ...(attentionOf[id] ? { attention: attentionOf[id] } : {}),
      lastRun: last
        ? {
            outcome: last.outcome,
            startedAt: new Date(last.started_at).toISOString(),
            durationMs: last.finished_at ? new Date(last.finished_at).getTime() - new Date(last.started_at).getTime() : null,
            stats: last.stats,
            error: last.error,
          }
        : null,
      lastSuccessAt: lastSuccess?.toISOString() ?? null,
      missed,
    };
  });
  return {
    // 200 only when every job is healthy or has never run and no section says otherwise (stale
    // mailboxes); `degraded`, `unhealthy`, `missed` answer 503
    healthy: jobs.every((j) => j.health === 'healthy' || j.health === 'unknown') && sectionsHealthy,
    jobs,
    // fan-out sweeps (lib/cron/sweep.ts)
    sweeps: await readSweeps(db, registry.jobs),
    ...sections,
  } as Status<J, A>;
}
