import { randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { cronLeases, cronRuns } from '../../db/schema/index.js';
import type { Stats, Trigger } from './types.js';

export const newRunId = () => randomUUID();

export type RunOutcome = 'succeeded' | 'partial' | 'failed' | 'skipped';

/** Opens the ledger row of a run (dry runs included). Uses the real clock, never `now=`. */
export async function recordRunStart(db: Db, run: { id: string; job: string; trigger: Trigger; dryRun: boolean; startedAt: Date; parentRunId?: string }) {
  await db.insert(cronRuns).values({ ...run, parentRunId: run.parentRunId ?? null, outcome: 'running' });
}

export async function recordRunEnd(db: Db, runId: string, end: { outcome: RunOutcome; stats?: Stats; error?: string }) {
  await db
    .update(cronRuns)
    .set({ outcome: end.outcome, stats: end.stats ?? null, error: end.error ?? null, finishedAt: new Date() })
    .where(eq(cronRuns.id, runId));
}

/**
 * Takes the job's lease with one conditional upsert: it succeeds only when no row exists, the
 * existing one has expired, or its holder is provably finished (its cron_runs row has a
 * `finished_at`: the run ended but could not release, e.g. the database went away at that
 * moment). Expiry uses the database clock, shared by every invocation.
 */
export async function acquireLease(db: Db, key: string, holder: string, ttlSec: number): Promise<boolean> {
  const rows = await queryRows<{ holder: string }>(db, sql`
    insert into ${cronLeases} (job, holder, expires_at)
    values (${key}, ${holder}, now() + make_interval(secs => ${ttlSec}))
    on conflict (job) do update set holder = excluded.holder, expires_at = excluded.expires_at
      where ${cronLeases.expiresAt} < now()
        or exists (select 1 from cron_runs r where r.id = ${cronLeases.holder} and r.finished_at is not null)
    returning holder`);
  return rows.length === 1 && rows[0].holder === holder;
}

/** Releases the lease if this run still holds it (a run that outlived its lease touches nothing). */
export async function releaseLease(db: Db, key: string, holder: string): Promise<void> {
  await db.delete(cronLeases).where(and(eq(cronLeases.job, key), eq(cronLeases.holder, holder)));
}
