import type { Config } from '@netlify/functions';
import { netlifyJobFunction } from '../lib/adapter.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';

export default netlifyJobFunction(followupsJob);
export const config: Config = { path: ['/followups/process-automatic', '/api/followups/process-automatic'] };
