import type { Config } from '@netlify/functions';
import { netlifyBackgroundFunction } from '../lib/adapter.js';
import { accountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';

export default netlifyBackgroundFunction(accountDeletionsJob);
export const config: Config = { path: '/api/background/users/process-account-deletions' };
