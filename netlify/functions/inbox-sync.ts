import type { Config } from '@netlify/functions';
import { netlifyJobFunction } from '../lib/adapter.js';
import { inboxSyncJob } from '../../lib/jobs/inbox-sync/index.js';

export default netlifyJobFunction(inboxSyncJob);
export const config: Config = { path: ['/inbox/integrations/sync-all', '/api/inbox/integrations/sync-all'] };
