import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../../db/client.js';
import { staleSendingCondition } from '../../mail/claimed-send.js';
import type { JobAttention } from '../../cron/types.js';

export type AccountDeletionsSections = { deletionEmails: { sendsInUnknownState: number; staleSendingClaims: number } };

/** /cron/status: J-7 reminder and confirmation emails a person must check (docs/sending.md). */
export async function readAccountDeletionsAttention(db: Db): Promise<JobAttention<AccountDeletionsSections>> {
  const [r] = await queryRows<{ unknown: number; stale: number }>(db, sql`
    select (select count(*)::int from mail_sends where delivery = 'unknown') as unknown,
           (select count(*)::int from mail_sends h where ${staleSendingCondition('h')}) as stale`);
  return {
    emails: { unknownSends: r.unknown, staleClaims: r.stale },
    sections: { deletionEmails: { sendsInUnknownState: r.unknown, staleSendingClaims: r.stale } },
  };
}
