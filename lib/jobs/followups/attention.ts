import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../../db/client.js';
import { staleSendingCondition } from '../../mail/claimed-send.js';
import type { JobAttention } from '../../cron/types.js';

export type FollowupsSections = { followups: { sendsInUnknownState: number; staleSendingClaims: number } };

/** /cron/status: follow-up emails a person must check (docs/sending.md). */
export async function readFollowupsAttention(db: Db): Promise<JobAttention<FollowupsSections>> {
  const [r] = await queryRows<{ unknown: number; stale: number }>(db, sql`
    select (select count(*)::int from followup_history where delivery = 'unknown') as unknown,
           (select count(*)::int from followup_history h where ${staleSendingCondition('h')}) as stale`);
  return {
    emails: { unknownSends: r.unknown, staleClaims: r.stale },
    sections: { followups: { sendsInUnknownState: r.unknown, staleSendingClaims: r.stale } },
  };
}
