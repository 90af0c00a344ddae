import type { Job } from '../../cron/types.js';
import { DEFAULT_MAX_DURATION_SEC } from '../../cron/budget.js';
import { dryRunAccountDeletions } from './dry-run.js';
import { runAccountDeletions, type DeletionHooks } from './run.js';
import { readAccountDeletionsAttention, type AccountDeletionsSections } from './attention.js';
import { JOB_TEXTS } from './messages.js';

export type { DeletionHooks };

/** `/users/process-account-deletions`: deletes accounts 30 days after the request (docs/account-deletions.md). */
export function createAccountDeletionsJob(opts: { hooks?: DeletionHooks } = {}): Job<AccountDeletionsSections> {
  const hooks = opts.hooks ?? {};
  return {
    id: 'account-deletions',
    path: '/users/process-account-deletions',
    schedule: '0 2 * * *',
    maxDurationSec: DEFAULT_MAX_DURATION_SEC,
    ...JOB_TEXTS,
    healthcheckVariable: 'HEALTHCHECK_URL_ACCOUNT_DELETIONS',
    run: (ctx) => (ctx.dryRun ? dryRunAccountDeletions(ctx) : runAccountDeletions(ctx, hooks)),
    attention: readAccountDeletionsAttention,
  };
}

export const accountDeletionsJob = createAccountDeletionsJob();
