import type { Db } from '../../../db/client.js';
import { claimResidue } from '../../mail/claimed-send.js';
import { sendsAttention, type SendsSection } from '../../cron/attention.js';
import type { JobAttention } from '../../cron/types.js';
import { DELETION_EMAIL_SENDS } from '../../mail/sends.js';

export type AccountDeletionsSections = { deletionEmails: SendsSection };

/** /cron/status: J-7 reminder and confirmation emails a person must check (docs/sending.md). */
export async function readAccountDeletionsAttention(db: Db): Promise<JobAttention<AccountDeletionsSections>> {
  return sendsAttention('deletionEmails', await claimResidue(db, DELETION_EMAIL_SENDS));
}
