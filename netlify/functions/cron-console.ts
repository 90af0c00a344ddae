import type { Config } from '@netlify/functions';
import { netlifyConsoleFunction } from '../lib/adapter.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';

export default netlifyConsoleFunction(JOB_REGISTRY);
export const config: Config = { path: ['/cron', '/api/cron/dashboard'] };
