import {
  DEFAULT_LEASE_TIMING,
  acquireLease,
  newRunId,
  recordRunEnd,
  recordRunStart,
  releaseLease,
  startHeartbeat,
  type Heartbeat,
} from './runs.js';
import { leaseKey } from './scope.js';
import type { Runtime } from './runtime.js';
import { NotImplementedError, type ItemError, type Job, type JobContext, type JobResult, type Trigger } from './types.js';
import type { RunParams } from './params.js';
import { classifyJobError, fullErrorForLog, publicErrorText } from './errors.js';
import { loadPostgresZones } from '../time/zone.js';
import { pingSummary, runPings } from './healthcheck.js';
import { budgetFor } from './budget.js';
import { coordinateIfNeeded, type SweepInfo } from './fanout.js';
import type { OutcomeKind, RunOutcome } from './outcome.js';
import { secretsOf } from '../config.js';

export const MAX_LISTED_ERRORS = 20; // cron-job.org reads at most 64 KB of the body
export const MAX_PLAN_ITEMS = 50;

export type { RunOutcome } from './outcome.js';

/** Code and message for the response and the ledger: the driver's cause, no SQL, host or port (errors.ts). */

/**
 * One run of a job through the whole contract (docs/contract.md): ledger row, lease (not for dry
 * runs), deadline, the job, release in `finally`, the outcome. Shared by the HTTP route, the CLI,
 * the console and the local scheduler.
 */
export type RunOptions = {
  onProgress?: (message: string) => void;
  // fan-out (lib/cron/fanout.ts): a shard's coordinator, told once the shard holds its lease, and
  // the shard's start jitter
  parentRunId?: string;
  onAccepted?: (runId: string) => void;
  startDelayMs?: number;
};

async function runJobOnce(job: Job, trigger: Trigger, params: RunParams, rt: Runtime, opts: RunOptions): Promise<RunOutcome> {
  const startedAt = new Date();
  const runId = newRunId();
  const { config } = rt;
  const secrets = secretsOf(config);
  const log = rt.logger.child({ job: job.id, runId });
  const previewDryRun = config.isPreview && config.PREVIEW_SIDE_EFFECTS !== 'on' && !params.dryRun;
  const dryRun = params.dryRun || previewDryRun;
  const budget = budgetFor(trigger, config.CRON_BUDGET_MS, job.maxDurationSec);
  const base = {
    job: job.id,
    runId,
    trigger,
    dryRun,
    budget: { ms: budget.ms, source: budget.source },
    ...(opts.parentRunId ? { parentRunId: opts.parentRunId } : {}),
    ...(previewDryRun
      ? { previewDryRun: true, note: 'Preview deployment: run as a dry run (set PREVIEW_SIDE_EFFECTS=on to allow side effects)' }
      : {}),
    ...(params.nowOverride ? { now: params.nowOverride.toISOString() } : {}),
    ...(params.scope.shard ? { shard: params.scope.shard } : {}),
    ...(params.scope.companyId !== undefined ? { companyId: params.scope.companyId } : {}),
  };
  const fail = (kind: OutcomeKind, code: string, message: string): RunOutcome => ({
    kind,
    body: { success: false, ...base, error: code, message, timestamp: new Date().toISOString() },
  });

  let handle;
  try {
    handle = await rt.openDb();
    await recordRunStart(handle.db, { id: runId, job: job.id, trigger, dryRun, startedAt, parentRunId: opts.parentRunId });
  } catch (err) {
    const e = classifyJobError(err, { secrets });
    log.error({ err: fullErrorForLog(err) }, 'database unavailable');
    await handle?.close().catch(() => {});
    return fail('failed', 'database_unavailable', e.message);
  }
  const db = handle.db;
  const key = leaseKey(job.id, params.scope);
  const mail = rt.mailFactory();
  const timing = rt.leaseTiming ?? DEFAULT_LEASE_TIMING;
  let holdsLease = false;
  let heartbeat: Heartbeat | undefined;
  let leaseLost: string | undefined;
  try {
    if (!dryRun) {
      // a short lease kept alive by a heartbeat: a killed run blocks the job for one TTL, not its budget
      holdsLease = await acquireLease(db, key, runId, timing.ttlSec);
      if (!holdsLease) {
        await recordRunEnd(db, runId, { outcome: 'skipped', stats: { reason: 'already-running' } });
        log.info('skipped: another run holds the lease');
        return {
          kind: 'skipped',
          body: {
            success: true,
            skipped: true,
            reason: 'already-running',
            message: job.message,
            timestamp: new Date().toISOString(),
            ...base,
          },
        };
      }
    }
    if (holdsLease) {
      heartbeat = startHeartbeat(db, key, runId, timing, (why) => {
        leaseLost = why;
        log.error(why);
      });
    }
    opts.onAccepted?.(runId);
    if (opts.startDelayMs) await new Promise((r) => setTimeout(r, opts.startDelayMs));
    // every job's zone rule (lib/time/zone.ts) knows PostgreSQL's zone names before it runs
    await loadPostgresZones(db);
    const deadline = startedAt.getTime() + budget.ms;
    const ctx: JobContext = {
      db,
      now: params.nowOverride ?? startedAt,
      deadline,
      dryRun,
      scope: params.scope,
      log,
      mail,
      config,
      runId,
      trigger,
      stopSignal: stopSignalOf(rt.stopSignal, heartbeat?.signal),
      progress: (message) => {
        opts.onProgress?.(message);
      },
    };
    log.info({ dryRun, scope: params.scope, trigger }, 'run started');
    // fan-out: a coordinator starts shards instead of doing the work (lib/cron/fanout.ts)
    const coordinated = await coordinateIfNeeded(job, ctx, { budget, selfUrl: rt.selfUrl?.() ?? null });
    const sweep: SweepInfo | undefined = coordinated.sweep;
    const ran: JobResult = coordinated.result ?? (await job.run(ctx));
    // a run that lost its lease stopped early: never a clean success
    const result: JobResult = leaseLost
      ? { ...ran, partial: true, errors: [...ran.errors, { scope: 'run', id: runId, code: 'lease_lost', message: leaseLost }] }
      : ran;
    const durationMs = Date.now() - startedAt.getTime();
    const errors: ItemError[] = result.errors
      .slice(0, MAX_LISTED_ERRORS)
      .map((e) => ({ ...e, message: publicErrorText(e.message, secrets, 300) }));
    const outcome = result.partial ? 'partial' : 'succeeded';
    const ledgerStats = {
      ...result.stats,
      errorsCount: result.errors.length,
      durationMs,
      budgetMs: budget.ms,
      budgetSource: budget.source,
      ...(sweep ? { sweepDue: sweep.due } : {}),
    };
    await recordRunEnd(db, runId, { outcome, stats: ledgerStats });
    log.info({ outcome, durationMs, stats: result.stats, errors: result.errors.length }, 'run finished');
    const body: Record<string, unknown> = {
      success: true,
      message: job.message,
      timestamp: new Date().toISOString(),
      ...base,
      durationMs,
      partial: result.partial,
      stats: result.stats,
      errors,
      errorsCount: result.errors.length,
    };
    if (dryRun) body.plan = (result.plan ?? []).slice(0, MAX_PLAN_ITEMS);
    return { kind: 'ran', body };
  } catch (err) {
    // one classifier for every job's failure (lib/cron/errors.ts): a run error, code and message
    const e = classifyJobError(err, { secrets });
    const notImplemented = err instanceof NotImplementedError;
    if (notImplemented) log.warn(e.message);
    else log.error({ err: fullErrorForLog(err) }, 'run failed');
    await recordRunEnd(db, runId, { outcome: 'failed', error: `${e.code}: ${e.message}` }).catch(() => {});
    return fail(notImplemented ? 'not_implemented' : 'failed', e.code, e.message);
  } finally {
    heartbeat?.stop();
    if (holdsLease)
      await releaseLease(db, key, runId).catch((err) => log.error({ err: fullErrorForLog(err) }, 'lease release failed; it will expire'));
    mail.closeAll();
    await handle.close().catch(() => {});
  }
}

/** The run stops claiming when the process stops or when its lease is lost. */
function stopSignalOf(...signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  return present.length > 1 ? AbortSignal.any(present) : present[0];
}

/** A run, with its health-check pings around it (lib/cron/healthcheck.ts; never for a dry run). */
export async function runJob(job: Job, trigger: Trigger, params: RunParams, rt: Runtime, opts: RunOptions = {}): Promise<RunOutcome> {
  const dryRun = params.dryRun || (rt.config.isPreview && rt.config.PREVIEW_SIDE_EFFECTS !== 'on');
  const pings = dryRun ? null : runPings(rt.config, job, rt.logger.child({ job: job.id }));
  pings?.start();
  const res = await runJobOnce(job, trigger, params, rt, opts);
  await pings?.finish(res.body.success === true ? 'success' : 'fail', pingSummary(job.id, res));
  return res;
}
