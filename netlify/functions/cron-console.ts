import type { Config } from '@netlify/functions';
import { netlifyConsoleFunction } from '../lib/adapter.js';

export default netlifyConsoleFunction();
export const config: Config = { path: ['/cron', '/api/cron/dashboard'] };
