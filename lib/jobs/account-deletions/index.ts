import { notImplementedJob } from '../../cron/types.js';

// Until this job's issue lands, its route answers 501 not_implemented (never a fake success).
export const accountDeletionsJob = notImplementedJob('account-deletions');
