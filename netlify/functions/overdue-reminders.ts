import type { Config } from '@netlify/functions';
import { netlifyJobFunction } from '../lib/adapter.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';

export default netlifyJobFunction(overdueRemindersJob);
export const config: Config = { path: ['/cron/check-overdue-and-reminders', '/api/cron/check-overdue-and-reminders'] };
