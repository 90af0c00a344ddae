import { readBounceStatus } from '../bounces/status.js';
import { Cron } from 'croner';
import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { JOBS, JOB_IDS, type JobId } from './jobs.js';
import { readNeedsReauth } from '../oauth/status.js';
import { readMissedRuns, type MissedVerdict } from './schedule.js';
import { staleSendingCondition } from '../mail/claimed-send.js';

/**
 * A run still `running` without a live lease this long after it started has died (its process
 * was killed): it is shown as failed. The grace covers the instant between the run's ledger row
 * and its lease.
 */
export const CRASHED_RUN_GRACE_SEC = 10;
/** Error shown for such a run. */
export const CRASHED_RUN_ERROR = 'crashed: the run never finished (its process died or was killed)';

/** Crash residue of a job's emails: sends in `unknown` and claims left `sending` past the stale timeout. */
export type Attention = { unknownSends: number; staleClaims: number };
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

/**
 * A job that would be healthy but has crash residue (attention) is `degraded`: not healthy, the
 * status answers 503 (docs/sending.md: an `unknown` email needs a person, so it must page).
 */
export function withAttention<T extends { health: JobHealth['health']; reason?: string }>(verdict: T, attention: Attention | undefined): T {
  if (!attention || (attention.unknownSends === 0 && attention.staleClaims === 0) || verdict.health === 'unhealthy') return verdict;
  const parts = [
    attention.unknownSends ? `${attention.unknownSends} email(s) in an unknown state (check the recipients' mailboxes, then mark them)` : '',
    attention.staleClaims ? `${attention.staleClaims} claim(s) left sending by a run that died (the next run clears them)` : '',
  ].filter(Boolean);
  return { ...verdict, health: 'degraded', reason: parts.join('; ') };
}

export async function readStatus(db: Db, now: Date) {
  // the last three counted runs of each job, and each job's last success, in two statements; a
  // run left `running` by a dead process (no live lease) counts as failed
  const runs = await queryRows<RunRow>(db, sql`
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
    ) r where rn <= 3`);
  const successes = await queryRows<{ job: string; at: Date }>(db, sql`
    select job, max(started_at) as at from cron_runs
    where not dry_run and outcome in ('succeeded', 'partial') group by job`);
  const attention = await queryRows<{
    integrations_in_error: number; followups_unknown: number; reminders_unknown: number; deletion_unknown: number;
    followups_stale: number; reminders_stale: number; deletion_stale: number;
  }>(db, sql`
    select
      (select count(*)::int from inbox_integrations where is_active is not false
         and last_sync_status in ('error', 'auth_error', 'paused')) as integrations_in_error,
      (select count(*)::int from followup_history where delivery = 'unknown') as followups_unknown,
      (select count(*)::int from appointment_reminders where delivery = 'unknown') as reminders_unknown,
      (select count(*)::int from mail_sends where delivery = 'unknown') as deletion_unknown,
      (select count(*)::int from followup_history h where ${staleSendingCondition('h')}) as followups_stale,
      (select count(*)::int from appointment_reminders h where ${staleSendingCondition('h')}) as reminders_stale,
      (select count(*)::int from mail_sends h where ${staleSendingCondition('h')}) as deletion_stale`);
  const a = attention[0];
  const attentionOf: Partial<Record<JobId, Attention>> = {
    followups: { unknownSends: a.followups_unknown, staleClaims: a.followups_stale },
    'overdue-reminders': { unknownSends: a.reminders_unknown, staleClaims: a.reminders_stale },
    'account-deletions': { unknownSends: a.deletion_unknown, staleClaims: a.deletion_stale },
  };
  const erroredIntegrations = await queryRows<{ id: number; company_id: number; last_sync_status: string; last_sync_at: Date | null; consecutive_failures: number }>(db, sql`
    select id, company_id, last_sync_status, last_sync_at, consecutive_failures from inbox_integrations
    where is_active is not false and last_sync_status in ('error', 'auth_error', 'paused')
    order by id limit 20`);

  const missedRuns = await readMissedRuns(db, now);

  const jobs: JobHealth[] = JOB_IDS.map((id) => {
    const mine = runs.filter((r) => r.job === id).sort((a, b) => a.rn - b.rn);
    const s = successes.find((x) => x.job === id);
    const lastSuccess = s?.at ? new Date(s.at) : null;
    const judged = withAttention(
      judgeHealth(mine.map((r) => ({ outcome: r.outcome, startedAt: new Date(r.started_at) })), lastSuccess, scheduleIntervalMs(JOBS[id].schedule, now), now),
      attentionOf[id]);
    const last = mine[0];
    const missed = missedRuns[id];
    const verdict: { health: JobHealth['health']; reason?: string } = missed.missed
      ? { health: 'missed', reason: `no scheduled run since ${missed.windowStart} (expected ${missed.expected.join(', ')})` }
      : judged;
    return {
      job: id,
      schedule: JOBS[id].schedule,
      health: verdict.health,
      healthy: verdict.health === 'unknown' ? null : verdict.health === 'healthy',
      ...(verdict.reason ? { reason: verdict.reason } : {}),
      ...(attentionOf[id] ? { attention: attentionOf[id] } : {}),
      lastRun: last ? {
        outcome: last.outcome,
        startedAt: new Date(last.started_at).toISOString(),
        durationMs: last.finished_at ? new Date(last.finished_at).getTime() - new Date(last.started_at).getTime() : null,
        stats: last.stats,
        error: last.error,
      } : null,
      lastSuccessAt: lastSuccess?.toISOString() ?? null,
      missed,
    };
  });
  const inboxProgress = await readInboxProgress(db, now);
  // fan-out sweeps and inbox freshness (lib/cron/sweep.ts)
  const { sweeps, inboxFreshness } = await readSweeps(db, now);
  return {
    // 200 only when every job is healthy or has never run and the mailboxes are fresh;
    // `degraded`, `unhealthy`, `missed` and stale mailboxes answer 503
    healthy: jobs.every((j) => j.health === 'healthy' || j.health === 'unknown') && inboxFreshness.healthy,
    jobs,
    sweeps,
    inboxFreshness,
    inbox: { integrationsInError: a.integrations_in_error, integrations: erroredIntegrations, progress: inboxProgress },
    // OAuth mailboxes whose grant is gone: only the company can fix them (reconnect in the web app)
    oauthMailboxes: await readNeedsReauth(db),
    followups: { sendsInUnknownState: a.followups_unknown, staleSendingClaims: a.followups_stale },
    appointmentReminders: { sendsInUnknownState: a.reminders_unknown, staleSendingClaims: a.reminders_stale },
    deletionEmails: { sendsInUnknownState: a.deletion_unknown, staleSendingClaims: a.deletion_stale },
    // hard / soft / ignored bounces of the last 24 h, addresses known bounced (docs/bounces.md)
    bounces: await readBounceStatus(db),
  };
}

// ---- inbox mailboxes: are they advancing? ----

/** A mailbox not caught up that moved its cursor within this many inbox-sync intervals is advancing. */
export const ADVANCING_INTERVALS = 3;
/** Mailboxes listed one by one (the others are only counted). */
export const MAX_LISTED_MAILBOXES = 50;

export type MailboxProgressRow = {
  id: number; company_id: number; last_sync_status: string | null; last_sync_at: Date | string | null;
  last_progress_at: Date | string | null; sync_bytes_per_sec: number | null;
};

/**
 * Pure: `caught-up` (the last run finished the folder), `advancing` (behind, but its cursor moved
 * recently: a slow link that commits a little every run), `stalled` (behind, and no progress for
 * ADVANCING_INTERVALS intervals: stuck behind a link or an error), `never` (never synced).
 */
export function mailboxProgress(row: Pick<MailboxProgressRow, 'last_sync_status' | 'last_progress_at'>, intervalMs: number, now: Date): 'caught-up' | 'advancing' | 'stalled' | 'never' {
  if (row.last_sync_status === 'success') return 'caught-up';
  if (row.last_sync_status === null && row.last_progress_at === null) return 'never';
  const at = row.last_progress_at === null ? null : new Date(row.last_progress_at);
  return at && now.getTime() - at.getTime() <= ADVANCING_INTERVALS * intervalMs ? 'advancing' : 'stalled';
}

/** Per mailbox that is not caught up: its progress, last progress and measured bytes per second. */
export async function readInboxProgress(db: Db, now: Date) {
  const intervalMs = scheduleIntervalMs(JOBS['inbox-sync'].schedule, now);
  const rows = await queryRows<MailboxProgressRow & { total: number }>(db, sql`
    select id, company_id, last_sync_status, last_sync_at, last_progress_at, sync_bytes_per_sec, count(*) over ()::int as total
    from inbox_integrations
    where is_active is not false and integration_type = 'imap' and last_sync_status is distinct from 'success'
    order by last_progress_at nulls first, id
    limit ${MAX_LISTED_MAILBOXES}`);
  const counts = await queryRows<{ caught_up: number; behind: number }>(db, sql`
    select count(*) filter (where last_sync_status = 'success')::int as caught_up,
           count(*) filter (where last_sync_status is distinct from 'success')::int as behind
    from inbox_integrations where is_active is not false and integration_type = 'imap'`);
  const iso = (v: Date | string | null) => (v === null ? null : new Date(v).toISOString());
  const mailboxes = rows.map((r) => ({
    id: r.id,
    companyId: r.company_id,
    status: r.last_sync_status,
    progress: mailboxProgress(r, intervalMs, now),
    lastProgressAt: iso(r.last_progress_at),
    lastSyncAt: iso(r.last_sync_at),
    bytesPerSec: r.sync_bytes_per_sec,
  }));
  return {
    caughtUp: counts[0]?.caught_up ?? 0,
    behind: counts[0]?.behind ?? 0,
    stalledListed: mailboxes.filter((m) => m.progress === 'stalled').length,
    mailboxes,
  };
}
