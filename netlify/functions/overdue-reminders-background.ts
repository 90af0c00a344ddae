import type { Config } from '@netlify/functions';
import { netlifyBackgroundFunction } from '../lib/adapter.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';

export default netlifyBackgroundFunction(overdueRemindersJob);
export const config: Config = { path: '/api/background/cron/check-overdue-and-reminders' };
