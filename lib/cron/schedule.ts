import { Cron } from 'croner';
import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import type { Job } from './types.js';

/** Time between two runs of a cron schedule, measured from `now`. */
export function scheduleIntervalMs(schedule: string, now: Date): number {
  const [a, b] = new Cron(schedule, { timezone: 'UTC', paused: true }).nextRuns(2, now);
  return (b as Date).getTime() - (a as Date).getTime();
}

/**
 * Vercel's Hobby plan fires a cron at any minute of the scheduled hour: a run may arrive up to
 * 59 minutes after (or, counting clock skew, before) its expected time without anything being wrong.
 * A tighter schedule than the tolerance gets one interval of slack instead.
 */
export const HOBBY_TOLERANCE_MS = 59 * 60_000;
/** Expected occurrences that must all be without a run before the job is `missed`. */
export const MISSED_AFTER_OCCURRENCES = 2;
/** Triggers that prove the schedule fired (a console or CLI run does not). */
export const SCHEDULED_TRIGGERS = ['vercel-cron', 'http', 'scheduler', 'netlify-schedule', 'netlify-background'] as const;

/** Next expected run of a schedule after `now` (UTC, as Vercel reads it). */
export function nextExpectedRun(schedule: string, now: Date): Date | null {
  return new Cron(schedule, { timezone: 'UTC', paused: true }).nextRun(now);
}

/** The `count` latest occurrences of a schedule at or before `at`, newest first. */
export function previousOccurrences(schedule: string, at: Date, count: number): Date[] {
  return new Cron(schedule, { timezone: 'UTC', paused: true }).previousRuns(count, new Date(at.getTime() + 1));
}

export type MissedVerdict = {
  missed: boolean;
  /** Expected occurrences without a run, oldest first (ISO), when missed. */
  expected: string[];
  /** A run at or after this instant would have counted. */
  windowStart: string;
};

/**
 * Pure rule. The schedule's latest MISSED_AFTER_OCCURRENCES occurrences whose tolerance has
 * passed are the window; the job is missed when no scheduled run started since the oldest of them
 * (minus the tolerance). Needs evidence that the ledger was being written before the window
 * (`ledgerSince`, its oldest run of any job): a fresh database is not a missed schedule.
 */
export function judgeMissed(schedule: string, lastScheduledRunAt: Date | null, ledgerSince: Date | null, now: Date): MissedVerdict {
  const cron = new Cron(schedule, { timezone: 'UTC', paused: true });
  const [a, b] = cron.nextRuns(2, now);
  const interval = (b as Date).getTime() - (a as Date).getTime();
  const tolerance = Math.min(HOBBY_TOLERANCE_MS, interval);
  const occurrences = previousOccurrences(schedule, new Date(now.getTime() - tolerance), MISSED_AFTER_OCCURRENCES);
  const oldest = occurrences[occurrences.length - 1];
  const windowStart = new Date((oldest ?? now).getTime() - tolerance);
  const ledgerOlder = ledgerSince !== null && ledgerSince.getTime() <= windowStart.getTime();
  const arrived = lastScheduledRunAt !== null && lastScheduledRunAt.getTime() >= windowStart.getTime();
  const missed = occurrences.length === MISSED_AFTER_OCCURRENCES && ledgerOlder && !arrived;
  return { missed, expected: missed ? occurrences.map((d) => d.toISOString()).reverse() : [], windowStart: windowStart.toISOString() };
}

/**
 * Every job's missed-run verdict from the ledger, in one statement: per job, its latest
 * scheduled run and its first run, each one index probe on (job, started_at).
 */
export async function readMissedRuns(
  db: Db,
  now: Date,
  jobs: readonly Pick<Job, 'id' | 'schedule'>[],
): Promise<Record<string, MissedVerdict>> {
  const triggers = sql.join(
    SCHEDULED_TRIGGERS.map((t) => sql`${t}`),
    sql`, `,
  );
  const ids = sql.join(
    jobs.map((j) => sql`${j.id}`),
    sql`, `,
  );
  const rows = await queryRows<{ job: string; last_at: Date | null; first_at: Date | null }>(
    db,
    sql`
    select j.job,
      (select r.started_at from cron_runs r where r.job = j.job and r.trigger in (${triggers}) and not r.dry_run
        order by r.started_at desc limit 1) as last_at,
      (select r.started_at from cron_runs r where r.job = j.job order by r.started_at limit 1) as first_at
    from unnest(array[${ids}]::text[]) as j(job)`,
  );
  const firsts = rows.map((r) => (r.first_at ? new Date(r.first_at).getTime() : Infinity));
  const since = Number.isFinite(Math.min(...firsts)) ? new Date(Math.min(...firsts)) : null;
  const out: Record<string, MissedVerdict> = {};
  for (const job of jobs) {
    const last = rows.find((r) => r.job === job.id)?.last_at;
    out[job.id] = judgeMissed(job.schedule, last ? new Date(last) : null, since, now);
  }
  return out;
}
