import { budgetSpent, type ItemError, type JobContext, type JobResult } from '../../cron/types.js';
import { checkZone, loadPostgresZones } from '../../time/zone.js';
import { classifyJobError, fullErrorForLog } from '../../cron/errors.js';
import { OPERATOR_TEXTS } from './messages.js';
import { PLAN_SAMPLE, trialPlanItems } from './plan.js';
import { runReminders } from './run-reminders.js';
import {
  companiesWithInvalidZone,
  expireTrials,
  planNotificationPart,
  runNotificationPart,
  type NotificationPart,
  type PartResult,
} from './sql.js';

/**
 * The sequence of the job (docs/overdue-reminders.md): five parts, each its own statements in
 * autocommit, so that one failing part cannot poison another; the failure is reported (the run
 * answers 500 after the other parts ran), never swallowed.
 */

/** A part of the run failed (a bug, the database): the others still ran, the run answers 500. */
class PartFailedError extends Error {
  readonly code = 'part_failed';
}

export async function runOverdueReminders(ctx: JobContext): Promise<JobResult> {
  const errors: ItemError[] = [];
  const plan: unknown[] = [];
  const failedParts: string[] = [];
  const stats: Record<string, unknown> = {};
  let partial = false;
  const params = { now: ctx.now, scope: ctx.scope, frontendUrl: ctx.config.FRONTEND_URL };

  const part = async (name: string, fn: () => Promise<void>) => {
    if (budgetSpent(ctx)) {
      partial = true;
      stats[name] = { skipped: 'budget' };
      return;
    }
    try {
      await fn();
    } catch (err) {
      failedParts.push(name);
      ctx.log.error({ part: name, err: fullErrorForLog(err) }, 'part failed');
      const e = classifyJobError(err, { itemCode: 'part_failed' });
      errors.push({ scope: 'part', id: name, code: e.code, message: e.message });
    }
  };

  // the zone rule needs PostgreSQL's zone names (cached per process) before any statement
  await loadPostgresZones(ctx.db);
  await part('zones', async () => {
    for (const bad of await companiesWithInvalidZone(ctx.db, ctx.scope)) {
      errors.push({
        scope: 'company',
        id: bad.companyId,
        code: 'invalid_timezone',
        message: checkZone(bad.timezone).problem ?? OPERATOR_TEXTS.invalidZone,
      });
    }
  });

  await part('trials', async () => {
    const r = await expireTrials(ctx.db, { ...params, dryRun: ctx.dryRun });
    stats.trials = { expired: r.expired };
    if (ctx.dryRun) plan.push(...trialPlanItems(r.companyIds));
  });

  for (const name of ['invoices', 'overdueTasks', 'criticalTasks'] as NotificationPart[]) {
    await part(name, async () => {
      const r: PartResult = ctx.dryRun
        ? await planNotificationPart(ctx.db, name, params, PLAN_SAMPLE)
        : await runNotificationPart(ctx.db, name, params);
      const { sample, ...counts } = r;
      stats[name] = counts;
      if (ctx.dryRun) plan.push(...sample.slice(0, 12));
    });
  }

  await part('reminders', async () => {
    const r = await runReminders(ctx, errors, plan);
    stats.reminders = r.stats;
    if (r.partial) partial = true;
  });

  if (failedParts.length > 0) {
    const detail = errors
      .filter((e) => e.scope === 'part')
      .map((e) => `${e.id}: ${e.message}`)
      .join('; ');
    throw new PartFailedError(OPERATOR_TEXTS.partsFailed(failedParts.length, detail));
  }
  return { stats, errors, partial, ...(ctx.dryRun ? { plan: plan.slice(0, PLAN_SAMPLE) } : {}) };
}
