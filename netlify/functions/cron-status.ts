import type { Config } from '@netlify/functions';
import { netlifyStatusFunction } from '../lib/adapter.js';

export default netlifyStatusFunction();
export const config: Config = { path: ['/cron/status', '/api/cron/status'] };
