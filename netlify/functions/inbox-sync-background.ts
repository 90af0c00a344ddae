import type { Config } from '@netlify/functions';
import { netlifyBackgroundFunction } from '../lib/adapter.js';
import { inboxSyncJob } from '../../lib/jobs/inbox-sync/index.js';

export default netlifyBackgroundFunction(inboxSyncJob);
export const config: Config = { path: '/api/background/inbox/integrations/sync-all' };
