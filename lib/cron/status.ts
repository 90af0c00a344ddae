import { Cron } from 'croner';
import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { JOBS, JOB_IDS, type JobId } from './jobs.js';
import { readSweeps } from './sweep.js';

/** Time between two runs of a cron schedule, measured from `now`. */
export function scheduleIntervalMs(schedule: string, now: Date): number {
  const [a, b] = new Cron(schedule, { timezone: 'UTC', paused: true }).nextRuns(2, now);
  return (b as Date).getTime() - (a as Date).getTime();
}

type RunRow = { job: string; outcome: string; started_at: Date; finished_at: Date | null; stats: unknown; error: string | null; rn: number };

export type JobHealth = {
  job: JobId;
  schedule: string;
  health: 'healthy' | 'unhealthy' | 'unknown';
  healthy: boolean | null;
  reason?: string;
  lastRun: null | { outcome: string; startedAt: string; durationMs: number | null; stats: unknown; error: string | null };
  lastSuccessAt: string | null;
};

/**
 * Pure health rule (SPEC §2.7), given a job's latest non-dry, non-skipped runs (newest first) and
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
    return { health: 'unhealthy' as const, reason: lastSuccessAt ? 'no success for more than three schedule intervals' : 'never succeeded' };
  }
  return { health: 'healthy' as const };
}

export async function readStatus(db: Db, now: Date) {
  // the last three counted runs of each job, and each job's last success, in two statements
  const runs = await queryRows<RunRow>(db, sql`
    select * from (
      select job, outcome, started_at, finished_at, stats, error,
             row_number() over (partition by job order by started_at desc) as rn
      from cron_runs where not dry_run and outcome in ('succeeded', 'partial', 'failed')
    ) r where rn <= 3`);
  const successes = await queryRows<{ job: string; at: Date }>(db, sql`
    select job, max(started_at) as at from cron_runs
    where not dry_run and outcome in ('succeeded', 'partial') group by job`);
  const attention = await queryRows<{ integrations_in_error: number; followups_unknown: number; reminders_unknown: number }>(db, sql`
    select
      (select count(*)::int from inbox_integrations where is_active is not false
         and last_sync_status in ('error', 'auth_error', 'paused')) as integrations_in_error,
      (select count(*)::int from followup_history where delivery = 'unknown') as followups_unknown,
      (select count(*)::int from appointment_reminders where delivery = 'unknown') as reminders_unknown`);
  const erroredIntegrations = await queryRows<{ id: number; company_id: number; last_sync_status: string; last_sync_at: Date | null; consecutive_failures: number }>(db, sql`
    select id, company_id, last_sync_status, last_sync_at, consecutive_failures from inbox_integrations
    where is_active is not false and last_sync_status in ('error', 'auth_error', 'paused')
    order by id limit 20`);

  const jobs: JobHealth[] = JOB_IDS.map((id) => {
    const mine = runs.filter((r) => r.job === id).sort((a, b) => a.rn - b.rn);
    const s = successes.find((x) => x.job === id);
    const lastSuccess = s?.at ? new Date(s.at) : null;
    const verdict = judgeHealth(mine.map((r) => ({ outcome: r.outcome, startedAt: new Date(r.started_at) })), lastSuccess, scheduleIntervalMs(JOBS[id].schedule, now), now);
    const last = mine[0];
    return {
      job: id,
      schedule: JOBS[id].schedule,
      health: verdict.health,
      healthy: verdict.health === 'unknown' ? null : verdict.health === 'healthy',
      ...('reason' in verdict ? { reason: verdict.reason } : {}),
      lastRun: last ? {
        outcome: last.outcome,
        startedAt: new Date(last.started_at).toISOString(),
        durationMs: last.finished_at ? new Date(last.finished_at).getTime() - new Date(last.started_at).getTime() : null,
        stats: last.stats,
        error: last.error,
      } : null,
      lastSuccessAt: lastSuccess?.toISOString() ?? null,
    };
  });
  const a = attention[0];
  // fan-out sweeps and inbox freshness (lib/cron/sweep.ts)
  const { sweeps, inboxFreshness } = await readSweeps(db, now);
  return {
    healthy: jobs.every((j) => j.health !== 'unhealthy') && inboxFreshness.healthy,
    jobs,
    sweeps,
    inboxFreshness,
    inbox: { integrationsInError: a.integrations_in_error, integrations: erroredIntegrations },
    followups: { sendsInUnknownState: a.followups_unknown },
    appointmentReminders: { sendsInUnknownState: a.reminders_unknown },
  };
}
