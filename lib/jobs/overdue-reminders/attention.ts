import type { Db } from '../../../db/client.js';
import { claimResidue } from '../../mail/claimed-send.js';
import { sendsAttention, type SendsSection } from '../../cron/attention.js';
import type { JobAttention } from '../../cron/types.js';
import { REMINDER_SENDS } from '../../mail/sends.js';

export type OverdueRemindersSections = { appointmentReminders: SendsSection };

/** /cron/status: appointment-reminder emails a person must check (docs/sending.md). */
export async function readOverdueRemindersAttention(db: Db): Promise<JobAttention<OverdueRemindersSections>> {
  return sendsAttention('appointmentReminders', await claimResidue(db, REMINDER_SENDS));
}
