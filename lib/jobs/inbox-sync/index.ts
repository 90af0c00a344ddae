import type { Job } from '../../cron/types.js';
import { createInboxSyncJob } from './run.js';

/** SPEC §5.1: incremental, gap-free, duplicate-free IMAP import of every active mailbox. */
export const inboxSyncJob: Job = createInboxSyncJob();
export { createInboxSyncJob } from './run.js';
