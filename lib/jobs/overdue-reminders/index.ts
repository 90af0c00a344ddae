import type { Job } from '../../cron/types.js';
import { runOverdueReminders } from './run.js';
import { readOverdueRemindersAttention } from './attention.js';

/**
 * `/cron/check-overdue-and-reminders`: overdue invoices and tasks, critical tasks, appointment
 * reminders, expired trials (docs/overdue-reminders.md).
 */
export const overdueRemindersJob: Job = { id: 'overdue-reminders', run: runOverdueReminders, attention: readOverdueRemindersAttention };
