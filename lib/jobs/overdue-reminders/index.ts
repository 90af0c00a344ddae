import type { Job } from '../../cron/types.js';
import { DEFAULT_MAX_DURATION_SEC } from '../../cron/budget.js';
import { runOverdueReminders } from './run.js';
import { readOverdueRemindersAttention, type OverdueRemindersSections } from './attention.js';
import { JOB_TEXTS } from './messages.js';

/**
 * `/cron/check-overdue-and-reminders`: overdue invoices and tasks, critical tasks, appointment
 * reminders, expired trials (docs/overdue-reminders.md).
 */
export const overdueRemindersJob: Job<OverdueRemindersSections> = {
  id: 'overdue-reminders',
  path: '/cron/check-overdue-and-reminders',
  schedule: '0 * * * *',
  maxDurationSec: DEFAULT_MAX_DURATION_SEC,
  ...JOB_TEXTS,
  healthcheckVariable: 'HEALTHCHECK_URL_OVERDUE_REMINDERS',
  run: runOverdueReminders,
  attention: readOverdueRemindersAttention,
};
