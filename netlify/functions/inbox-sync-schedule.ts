import type { Config } from '@netlify/functions';
import { netlifyScheduledFunction } from '../lib/adapter.js';
import { inboxSyncJob } from '../../lib/jobs/inbox-sync/index.js';

export default netlifyScheduledFunction(inboxSyncJob);
export const config: Config = { schedule: '*/5 * * * *' };
