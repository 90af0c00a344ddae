/** inbox-sync: incremental, gap-free, duplicate-free IMAP import of every active mailbox (docs/inbox-sync.md). */
import type { Job } from '../../cron/types.js';
import { runInboxSync, type InboxSyncOptions } from './run.js';
import { readInboxSyncAttention } from './attention.js';

/** The job, with injectable TLS trust, command counting and hooks (tests and the benchmark). */
export function createInboxSyncJob(opts: InboxSyncOptions = {}): Job {
  return { id: 'inbox-sync', run: (ctx) => runInboxSync(ctx, opts), attention: readInboxSyncAttention };
}

export const inboxSyncJob: Job = createInboxSyncJob();
