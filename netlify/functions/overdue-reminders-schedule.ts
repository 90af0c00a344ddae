import type { Config } from '@netlify/functions';
import { netlifyScheduledFunction } from '../lib/adapter.js';
import { overdueRemindersJob } from '../../lib/jobs/overdue-reminders/index.js';

export default netlifyScheduledFunction(overdueRemindersJob);
export const config: Config = { schedule: '0 * * * *' };
