/**
 * The liveness of a run, as SQL on the database clock: the one rule behind every lease and claim
 * (job leases in lib/cron/runs.ts, mailbox leases, unsent mail claims). Below lib/ so that mail,
 * bounces and jobs read it without depending on the runner.
 */
import { sql, type SQL } from 'drizzle-orm';

/**
 * A run proves it is alive by beating: every HEARTBEAT_EVERY_SEC it renews its lease for
 * LEASE_TTL_SEC and stamps `cron_runs.heartbeat_at`, on the database clock. A killed run stops
 * beating, so its job lease, its mailbox leases and its unsent claims are free LEASE_TTL_SEC after
 * its last beat, while a live run keeps them for its whole budget (docs/contract.md).
 */
export const LEASE_TTL_SEC = 30;

/**
 * True when the run named by `runId` (an SQL expression: a column holding a cron_runs id) is
 * provably over: it finished, or it has not beaten for `ttlSec`. Null when no such run exists, so
 * the caller chooses its own fallback. The one liveness rule behind every lease and claim.
 */
export function runGone(runId: SQL, ttlSec = LEASE_TTL_SEC): SQL {
  return sql`(select r.finished_at is not null or coalesce(r.heartbeat_at, r.started_at) < now() - make_interval(secs => ${ttlSec})
    from cron_runs r where r.id = ${runId})`;
}

/**
 * A per-row lease (a mailbox's, the bounce mailbox's) is free when it was never taken, its upper
 * bound passed, or its holder run is gone (runGone): a killed run frees it one TTL after its
 * last beat instead of at the end of its budget. Columns unqualified or qualified by the caller.
 */
export function rowLeaseFree(until: SQL, holder: SQL): SQL {
  return sql`(${until} is null or ${until} < now() or coalesce(${runGone(holder)}, false))`;
}
