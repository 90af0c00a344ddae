import type { Config } from '@netlify/functions';
import { netlifyScheduledFunction } from '../lib/adapter.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';

export default netlifyScheduledFunction(followupsJob);
export const config: Config = { schedule: '0 * * * *' };
