import type { Config } from '@netlify/functions';
import { netlifyStatusFunction } from '../lib/adapter.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';

export default netlifyStatusFunction(JOB_REGISTRY);
export const config: Config = { path: ['/cron/status', '/api/cron/status'] };
