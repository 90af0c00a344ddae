import type { Job } from '../../cron/types.js';
import { dryRunAccountDeletions } from './dry-run.js';
import { runAccountDeletions, type DeletionHooks } from './run.js';
import { readAccountDeletionsAttention } from './attention.js';

export type { DeletionHooks };

/** `/users/process-account-deletions`: deletes accounts 30 days after the request (docs/account-deletions.md). */
export function createAccountDeletionsJob(opts: { hooks?: DeletionHooks } = {}): Job {
  const hooks = opts.hooks ?? {};
  return {
    id: 'account-deletions',
    run: (ctx) => (ctx.dryRun ? dryRunAccountDeletions(ctx) : runAccountDeletions(ctx, hooks)),
    attention: readAccountDeletionsAttention,
  };
}

export const accountDeletionsJob: Job = createAccountDeletionsJob();
