import type { Db } from '../../../db/client.js';
import { claimResidue } from '../../mail/claimed-send.js';
import { sendsAttention, type SendsSection } from '../../cron/attention.js';
import type { JobAttention } from '../../cron/types.js';
import { FOLLOWUP_SENDS } from '../../mail/sends.js';

export type FollowupsSections = { followups: SendsSection };

/** /cron/status: follow-up emails a person must check (docs/sending.md). */
export async function readFollowupsAttention(db: Db): Promise<JobAttention<FollowupsSections>> {
  return sendsAttention('followups', await claimResidue(db, FOLLOWUP_SENDS));
}
