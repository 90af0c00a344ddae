import type { Job } from '../cron/types.js';
import type { JobId } from '../cron/jobs.js';
import { inboxSyncJob } from './inbox-sync/index.js';
import { followupsJob } from './followups/index.js';
import { accountDeletionsJob } from './account-deletions/index.js';
import { overdueRemindersJob } from './overdue-reminders/index.js';

/** Every job by id: for the local server, the scheduler and the CLI (routes import only their own). */
export const JOB_REGISTRY: Record<JobId, Job> = {
  'inbox-sync': inboxSyncJob,
  followups: followupsJob,
  'account-deletions': accountDeletionsJob,
  'overdue-reminders': overdueRemindersJob,
};
