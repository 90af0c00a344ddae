import type { Job } from '../../cron/types.js';
import { createInboxSyncJob } from './run.js';
import { readInboxSyncAttention } from './attention.js';

/** SPEC §5.1: incremental, gap-free, duplicate-free IMAP import of every active mailbox. */
export const inboxSyncJob: Job = { ...createInboxSyncJob(), attention: readInboxSyncAttention };
export { createInboxSyncJob } from './run.js';
