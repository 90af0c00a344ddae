import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../../db/client.js';
import { staleSendingCondition } from '../../mail/claimed-send.js';
import type { JobAttention } from '../../cron/types.js';

export type OverdueRemindersSections = { appointmentReminders: { sendsInUnknownState: number; staleSendingClaims: number } };

/** /cron/status: appointment-reminder emails a person must check (docs/sending.md). */
export async function readOverdueRemindersAttention(db: Db): Promise<JobAttention<OverdueRemindersSections>> {
  const [r] = await queryRows<{ unknown: number; stale: number }>(db, sql`
    select (select count(*)::int from appointment_reminders where delivery = 'unknown') as unknown,
           (select count(*)::int from appointment_reminders h where ${staleSendingCondition('h')}) as stale`);
  return {
    emails: { unknownSends: r.unknown, staleClaims: r.stale },
    sections: { appointmentReminders: { sendsInUnknownState: r.unknown, staleSendingClaims: r.stale } },
  };
}
