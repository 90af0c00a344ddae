/** The follow-ups job (`/followups/process-automatic`): docs/followups.md; the sequence is run.ts. */
import type { Job } from '../../cron/types.js';
import { runFollowups } from './run.js';
import { readFollowupsAttention } from './attention.js';

export const followupsJob: Job = { id: 'followups', run: runFollowups, attention: readFollowupsAttention };
