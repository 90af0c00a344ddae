import type { Config } from '@netlify/functions';
import { netlifyScheduledFunction } from '../lib/adapter.js';
import { accountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';

export default netlifyScheduledFunction(accountDeletionsJob);
export const config: Config = { schedule: '0 2 * * *' };
