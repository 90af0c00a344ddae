import type { JobContext, JobResult } from '../../cron/types.js';
import { candidateOf, handlesGlobalWork, planItem } from './plan.js';
import { readAndDecide } from './run.js';
import { countDueReminders, selectDueRequests } from './sql.js';
import { countCompanyRows, countExpiredInvoices, countUserRows } from './sql-order.js';
import { countDeletion, newStats } from './stats.js';

const PLAN_ITEMS = 50;

/**
 * The dry run: the same selection and the same decision per account as the run (readAndDecide,
 * without locks), with counts of what the deletes would remove; nothing written, sent or claimed.
 */
export async function dryRunAccountDeletions(ctx: JobContext): Promise<JobResult> {
  const stats = newStats();
  const plan: unknown[] = [];
  const { rows, total } = await selectDueRequests(ctx.db, { now: ctx.now, scope: ctx.scope, limit: ctx.config.DELETION_BATCH });
  const batch = rows.map(candidateOf);
  stats.due = total;
  for (const cand of batch) {
    const { decision } = await readAndDecide(ctx.db, cand, ctx.now, false);
    if (decision.kind === 'skip') {
      if (decision.reason === 'cancelled') stats.skippedCancelled++;
      continue;
    }
    const handedOver = decision.kind === 'user' && decision.handOverTo !== null;
    if (decision.kind === 'company') {
      const c = await countCompanyRows(ctx.db, decision.companyId);
      countDeletion(stats, { kind: 'company', handedOver, deleted: c.deleted, retainedInvoices: c.retained.invoices ?? 0 });
      plan.push(planItem(cand, decision, c));
    } else {
      const c = await countUserRows(ctx.db, cand.id);
      countDeletion(stats, { kind: 'user', handedOver, deleted: c.deleted, nulled: c.nulled, retainedInvoices: 0 });
      plan.push(planItem(cand, decision, c));
    }
  }
  stats.remaining = total - batch.length;
  if (handlesGlobalWork(ctx.scope)) stats.purgedInvoices = await countExpiredInvoices(ctx.db, ctx.now);
  stats.remindersSent = await countDueReminders(ctx.db, ctx.now, ctx.scope);
  return { stats: stats as unknown as Record<string, unknown>, errors: [], partial: false, plan: plan.slice(0, PLAN_ITEMS) };
}
