import { runJob } from './run.js';
import { httpStatusOf, type RunOutcome } from './outcome.js';
import { platformWaitUntil, SHARD_START_JITTER_MS, startJitterMs } from './fanout.js';
import type { RunParams } from './params.js';
import type { Runtime } from './runtime.js';
import type { Job } from './types.js';

/**
 * A fan-out shard's request (docs/scale.md): answers 202 with its run id as soon as the run holds
 * its lease, and goes on working after the answer (kept alive by Vercel's waitUntil). A shard that
 * cannot start (lease held, database down) answers as any run would.
 */
export function runShard(
  job: Job,
  params: RunParams,
  rt: Runtime,
  parentRunId: string,
  random: () => number = Math.random,
): Promise<RunOutcome> {
  return new Promise((resolve) => {
    let answered = false;
    const run = runJob(job, 'fanout', params, rt, {
      parentRunId,
      startDelayMs: startJitterMs(random, SHARD_START_JITTER_MS),
      onAccepted: (runId) => {
        answered = true;
        resolve({
          kind: 'accepted',
          body: {
            success: true,
            accepted: true,
            job: job.id,
            runId,
            parentRunId,
            shard: params.scope.shard,
            trigger: 'fanout',
            timestamp: new Date().toISOString(),
          },
        });
      },
    }).then(
      (r) => {
        if (!answered) resolve(r);
        else
          rt.logger.info({ job: job.id, parentRunId, status: httpStatusOf(r), partial: r.body.partial ?? null }, 'fan-out shard finished');
      },
      (err) => {
        rt.logger.error({ job: job.id, parentRunId, err: String((err as Error)?.message ?? err) }, 'fan-out shard crashed');
        if (!answered) resolve({ kind: 'failed', body: { success: false, error: 'job_failed', message: 'the shard could not run' } });
      },
    );
    platformWaitUntil()?.(run);
  });
}
