import type { Job } from '../../cron/types.js';
import { createAccountDeletionsJob } from './run.js';
import { readAccountDeletionsAttention } from './attention.js';

/** `/users/process-account-deletions` (SPEC §5.3): deletes accounts 30 days after the request. */
export const accountDeletionsJob: Job = { ...createAccountDeletionsJob(), attention: readAccountDeletionsAttention };
export { createAccountDeletionsJob, type DeletionHooks } from './run.js';
