/** The follow-ups job (`/followups/process-automatic`): docs/followups.md; the sequence is run.ts. */
import type { Job } from '../../cron/types.js';
import { DEFAULT_MAX_DURATION_SEC } from '../../cron/budget.js';
import { runFollowups } from './run.js';
import { readFollowupsAttention, type FollowupsSections } from './attention.js';
import { countDueFollowups } from './sweep.js';
import { JOB_TEXTS } from './messages.js';

export const followupsJob: Job<FollowupsSections> = {
  id: 'followups',
  path: '/followups/process-automatic',
  schedule: '0 * * * *',
  maxDurationSec: DEFAULT_MAX_DURATION_SEC,
  ...JOB_TEXTS,
  healthcheckVariable: 'HEALTHCHECK_URL_FOLLOWUPS',
  run: runFollowups,
  attention: readFollowupsAttention,
  sweep: {
    // bench/followups.ts: ~100 emails/s through a pooled SMTP transport and batched claims
    defaultCostMs: 10,
    itemsStat: 'sent',
    countDue: countDueFollowups,
  },
};
