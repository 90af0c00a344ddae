import { budgetSpent, type ItemError, type JobContext } from '../../cron/types.js';
import { noSmtpAnswerText } from '../../cron/errors.js';
import { maskEmail } from '../../log.js';
import type { ClaimedSend } from '../../mail/claimed-send.js';
import { reminderMail } from './messages.js';
import { claimedReminderOf } from './plan.js';
import { claimDueReminders, recordMailSend } from './sql.js';
import type { DeletionStats } from './stats.js';

/** Reminders claimed per statement: a claim is only made for mail the run can still send. */
const REMINDER_CLAIM_BATCH = 25;

/**
 * The J-7 reminders: claim a batch (sql.ts claimDueReminders: the one "reminder due" rule), send
 * each through the send protocol, record the answer; until nothing is due or the budget is spent.
 * True when work is left for the next run.
 */
export async function runReminders(ctx: JobContext, stats: DeletionStats, errors: ItemError[], claimed: ClaimedSend): Promise<boolean> {
  // a temporary failure gives the claim back for the next run; this run does not retry it
  const failedThisRun: number[] = [];
  for (;;) {
    if (budgetSpent(ctx)) return true;
    const batch = (
      await claimDueReminders(ctx.db, {
        now: ctx.now,
        scope: ctx.scope,
        runId: ctx.runId,
        limit: REMINDER_CLAIM_BATCH,
        exclude: failedThisRun,
      })
    ).map(claimedReminderOf);
    if (batch.length === 0) return false;
    for (const [i, r] of batch.entries()) {
      const id = r.userId;
      if (r.sendId === null) {
        failedThisRun.push(id);
        continue;
      } // this request's email was claimed before: never twice
      const sendId = r.sendId;
      if (budgetSpent(ctx)) {
        await claimed.release(batch.slice(i).flatMap((x) => (x.sendId === null ? [] : [x.sendId])));
        stats.remindersLeft += batch.length - i;
        return true;
      }
      const mail = reminderMail({
        userId: id,
        to: r.email,
        fullName: r.fullName,
        scheduledAt: r.scheduledAt,
        timezone: r.timezone,
        from: ctx.config.MAIL_FROM,
        frontendUrl: ctx.config.FRONTEND_URL,
      });
      const outcome = await claimed.send(sendId, ctx.mail.platform(), mail);
      switch (outcome.state) {
        case 'sent':
          stats.remindersSent++;
          await recordMailSend(ctx.db, sendId, { sent: true, messageId: mail.messageId });
          break;
        case 'not_started':
          stats.remindersLeft++;
          break;
        case 'lost':
          break;
        case 'unknown':
          stats.emailsUnknown++;
          errors.push({ scope: 'reminder', id, code: outcome.error.code, message: noSmtpAnswerText(outcome.error.message) });
          break;
        case 'retry':
        case 'failed': {
          const e = outcome.error;
          stats.emailFailures++;
          errors.push({ scope: 'reminder', id, code: e.code, message: e.message });
          // a 4xx was given back by the protocol (the next run retries: a rare duplicate reminder
          // beats none before an irreversible deletion); a 5xx keeps the claim, so a dead
          // address is not retried
          if (outcome.state === 'failed') await recordMailSend(ctx.db, sendId, { sent: false, error: `${e.code}: ${e.message}` });
          else failedThisRun.push(id);
          ctx.log.warn(
            { userId: id, to: maskEmail(r.email), code: e.code, retryNextRun: outcome.state === 'retry' },
            'deletion reminder failed',
          );
        }
      }
    }
  }
}
