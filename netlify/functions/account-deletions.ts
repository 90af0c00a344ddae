import type { Config } from '@netlify/functions';
import { netlifyJobFunction } from '../lib/adapter.js';
import { accountDeletionsJob } from '../../lib/jobs/account-deletions/index.js';

export default netlifyJobFunction(accountDeletionsJob);
export const config: Config = { path: ['/users/process-account-deletions', '/api/users/process-account-deletions'] };
