/** inbox-sync: incremental, gap-free, duplicate-free IMAP import of every active mailbox (docs/inbox-sync.md). */
import type { Job } from '../../cron/types.js';
import { DEFAULT_MAX_DURATION_SEC } from '../../cron/budget.js';
import { scheduleIntervalMs } from '../../cron/schedule.js';
import { runInboxSync, type InboxSyncOptions } from './run.js';
import { readInboxSyncAttention, type InboxSyncSections } from './attention.js';
import { countDueMailboxes } from './sweep.js';
import { JOB_TEXTS } from './messages.js';

const SCHEDULE = '*/5 * * * *';

/** The job, with injectable TLS trust, command counting and hooks (tests and the benchmark). */
export function createInboxSyncJob(opts: InboxSyncOptions = {}): Job<InboxSyncSections> {
  return {
    id: 'inbox-sync',
    path: '/inbox/integrations/sync-all',
    schedule: SCHEDULE,
    maxDurationSec: DEFAULT_MAX_DURATION_SEC,
    ...JOB_TEXTS,
    healthcheckVariable: 'HEALTHCHECK_URL_INBOX_SYNC',
    run: (ctx) => runInboxSync(ctx, opts),
    attention: (db, now) => readInboxSyncAttention(db, now, scheduleIntervalMs(SCHEDULE, now)),
    sweep: {
      // a mailbox with nothing new over a WAN link: TLS + LOGIN + STATUS + LOGOUT, ~400 ms, 4 at once
      defaultCostMs: 100,
      itemsStat: 'synced',
      countDue: countDueMailboxes,
    },
  };
}

export const inboxSyncJob = createInboxSyncJob();
