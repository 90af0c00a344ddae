import { defineRegistry } from '../cron/jobs.js';
import { readBounceAttention } from '../bounces/status.js';
import { inboxSyncJob } from './inbox-sync/index.js';
import { followupsJob } from './followups/index.js';
import { accountDeletionsJob } from './account-deletions/index.js';
import { overdueRemindersJob } from './overdue-reminders/index.js';

/**
 * Every job of the deployment, and the /cron/status sections that belong to no one job: the one
 * place that names them. The status and console routes (api/, netlify/), the local server and
 * the CLI hand it to lib/cron and lib/console; a job's own route imports only its job.
 */
export const JOB_REGISTRY = defineRegistry({
  jobs: [inboxSyncJob, followupsJob, accountDeletionsJob, overdueRemindersJob],
  // hard / soft / ignored bounces of the last 24 h, addresses known bounced (docs/bounces.md)
  attention: [readBounceAttention],
});
