import { HEALTHCHECK_URL_OF_JOB } from '../config.js';
import type { AttentionSource, Job, JobId } from './types.js';

export type { JobId } from './types.js';

/**
 * The jobs of the deployment as data, and the /cron/status readers that belong to no one job.
 * Built once (lib/jobs/registry.ts) and handed by the entry points (api/, the local server, the
 * CLI) to the status route, the console and the scheduler: nothing under lib/cron names a job.
 */
export type Registry<J extends Job = Job, A extends AttentionSource = AttentionSource> = {
  jobs: readonly J[];
  attention: readonly A[];
};

export const STATUS_PATH = '/cron/status';

/** A lease key, a ledger name and a URL segment: lower-case words joined by `-`. */
const JOB_ID = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/**
 * The registry, checked once when it is built: two jobs with one id would share a lease and a
 * ledger, two with one path would answer each other's route, and a health-check variable that
 * lib/config.ts does not read would never be pinged.
 */
export function defineRegistry<J extends Job, A extends AttentionSource>(registry: Registry<J, A>): Registry<J, A> {
  const problems: string[] = [];
  const seen = new Map<string, JobId>();
  for (const job of registry.jobs) {
    if (!JOB_ID.test(job.id)) problems.push(`${job.id}: an id is lower-case words joined by "-"`);
    if (!HEALTHCHECK_URL_OF_JOB.test(job.healthcheckVariable))
      problems.push(`${job.id}: healthcheckVariable must match ${HEALTHCHECK_URL_OF_JOB}`);
    for (const key of [`id ${job.id}`, `path ${job.path}`, `variable ${job.healthcheckVariable}`]) {
      const other = seen.get(key);
      if (other) problems.push(`${job.id}: ${key} is already ${other}'s`);
      seen.set(key, job.id);
    }
    if (job.path === STATUS_PATH) problems.push(`${job.id}: ${STATUS_PATH} is the status route`);
  }
  if (problems.length) throw new Error(`job registry: ${problems.join('; ')}`);
  return registry;
}

export function findJob<J extends Job>(registry: Pick<Registry<J>, 'jobs'>, id: string): J | undefined {
  return registry.jobs.find((j) => j.id === id);
}
