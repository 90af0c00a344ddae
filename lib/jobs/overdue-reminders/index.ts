import type { Job } from '../../cron/types.js';
import { runOverdueReminders } from './run.js';
import { readOverdueRemindersAttention } from './attention.js';

/**
 * `/cron/check-overdue-and-reminders` (SPEC §5.4): overdue invoices and tasks, critical tasks,
 * appointment reminders, expired trials. plan.ts decides, sql.ts and run.ts do.
 */
export const overdueRemindersJob: Job = { id: 'overdue-reminders', run: runOverdueReminders, attention: readOverdueRemindersAttention };
