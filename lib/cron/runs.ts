import { randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { cronLeases, cronRuns } from '../../db/schema/index.js';
import { LEASE_TTL_SEC } from '../../db/liveness.js';
import type { Stats, Trigger } from './types.js';

export const newRunId = () => randomUUID();

export type RunOutcome = 'succeeded' | 'partial' | 'failed' | 'skipped';

/** Three beats per TTL (LEASE_TTL_SEC, db/liveness.ts): one slow statement or a busy event loop does not lose the lease. */
export const HEARTBEAT_EVERY_SEC = 10;
export type LeaseTiming = { ttlSec: number; everySec: number };
export const DEFAULT_LEASE_TIMING: LeaseTiming = { ttlSec: LEASE_TTL_SEC, everySec: HEARTBEAT_EVERY_SEC };

/** Error recorded for a run whose lease was taken over after it stopped beating. */
export const CRASHED_RUN_ERROR = 'crashed: the run never finished (its process died or was killed)';

/** Opens the ledger row of a run (dry runs included). Uses the real clock, never `now=`; its first beat is the database's now. */
export async function recordRunStart(
  db: Db,
  run: { id: string; job: string; trigger: Trigger; dryRun: boolean; startedAt: Date; parentRunId?: string },
) {
  await db.insert(cronRuns).values({ ...run, parentRunId: run.parentRunId ?? null, outcome: 'running', heartbeatAt: sql`now()` });
}

export async function recordRunEnd(db: Db, runId: string, end: { outcome: RunOutcome; stats?: Stats; error?: string }) {
  await db
    .update(cronRuns)
    .set({ outcome: end.outcome, stats: end.stats ?? null, error: end.error ?? null, finishedAt: new Date() })
    .where(eq(cronRuns.id, runId));
}

/**
 * Takes the job's lease with one conditional upsert: it succeeds only when no row exists, the
 * existing one has expired (its holder stopped beating), or its holder is provably finished (the
 * run ended but could not release, e.g. the database went away at that moment). A holder taken
 * over while still `running` died: its ledger row is closed as failed at its last beat, in the
 * same statement. Expiry uses the database clock, shared by every invocation.
 */
export async function acquireLease(db: Db, key: string, holder: string, ttlSec: number): Promise<boolean> {
  const rows = await queryRows<{ holder: string }>(
    db,
    sql`
    with previous as (select holder from ${cronLeases} where job = ${key}),
    taken as (
      insert into ${cronLeases} (job, holder, expires_at)
      values (${key}, ${holder}, now() + make_interval(secs => ${ttlSec}))
      on conflict (job) do update set holder = excluded.holder, expires_at = excluded.expires_at
        where ${cronLeases.expiresAt} < now()
          or exists (select 1 from cron_runs r where r.id = ${cronLeases.holder} and r.finished_at is not null)
      returning holder),
    closed as (
      update cron_runs set outcome = 'failed', error = ${CRASHED_RUN_ERROR}, finished_at = coalesce(heartbeat_at, started_at)
      where id in (select holder from previous) and id <> ${holder} and finished_at is null
        and exists (select 1 from taken where taken.holder = ${holder})
      returning id)
    select holder from taken`,
  );
  return rows.length === 1 && rows[0].holder === holder;
}

/**
 * One beat: stamps the run's `heartbeat_at` and renews its lease for `ttlSec`, in one statement
 * on the database clock. False when the run no longer holds the lease (taken over after a
 * silence longer than the TTL, or its ledger row was closed): the run must stop.
 */
export async function renewLease(db: Db, key: string, holder: string, ttlSec: number): Promise<boolean> {
  const rows = await queryRows<{ job: string }>(
    db,
    sql`
    with beat as (update cron_runs set heartbeat_at = now() where id = ${holder} and finished_at is null returning id)
    update ${cronLeases} set expires_at = now() + make_interval(secs => ${ttlSec})
    where job = ${key} and holder = ${holder} and exists (select 1 from beat)
    returning job`,
  );
  return rows.length === 1;
}

export type Heartbeat = {
  /** Aborted when the lease is lost (taken over, or no beat could be written for a whole TTL). */
  signal: AbortSignal;
  stop(): void;
};

/**
 * Beats every `everySec` until stopped. A lost lease, or no successful beat for a whole TTL
 * (the database is unreachable, so another run may already have taken over), aborts `signal`:
 * the run claims nothing new and starts no SMTP transaction (lib/mail/claimed-send.ts).
 */
export function startHeartbeat(db: Db, key: string, holder: string, timing: LeaseTiming, onLost: (why: string) => void): Heartbeat {
  const lost = new AbortController();
  let lastBeat = Date.now();
  let beating = false;
  const lose = (why: string) => {
    if (lost.signal.aborted) return;
    lost.abort(new Error(why));
    onLost(why);
  };
  const timer = setInterval(() => {
    if (beating || lost.signal.aborted) return;
    beating = true;
    renewLease(db, key, holder, timing.ttlSec)
      .then(
        (held) => {
          if (held) lastBeat = Date.now();
          else lose('lease lost: another run took over this job');
        },
        (err: Error) => {
          if (Date.now() - lastBeat >= timing.ttlSec * 1000)
            lose(`lease lost: no heartbeat could be written for ${timing.ttlSec} s (${err.message})`);
        },
      )
      .finally(() => {
        beating = false;
      });
  }, timing.everySec * 1000);
  timer.unref?.();
  return { signal: lost.signal, stop: () => clearInterval(timer) };
}

/** Releases the lease if this run still holds it (a run that outlived its lease touches nothing). */
export async function releaseLease(db: Db, key: string, holder: string): Promise<void> {
  await db.delete(cronLeases).where(and(eq(cronLeases.job, key), eq(cronLeases.holder, holder)));
}
