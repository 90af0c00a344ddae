import type { Config } from '@netlify/functions';
import { netlifyBackgroundFunction } from '../lib/adapter.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';

export default netlifyBackgroundFunction(followupsJob);
export const config: Config = { path: '/api/background/followups/process-automatic' };
