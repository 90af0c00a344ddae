import { markBouncedRecipients } from '../../bounces/reminders.js';
import pLimit from 'p-limit';
import { budgetSpent, type ItemError, type JobContext } from '../../cron/types.js';
import { noSmtpAnswerText } from '../../cron/errors.js';
import { createClaimedSend } from '../../mail/claimed-send.js';
import { REMINDER_SENDS } from '../../mail/sends.js';
import { OPERATOR_TEXTS, renderReminder } from './messages.js';
import {
  PLAN_SAMPLE,
  candidateOf,
  claimItemsOf,
  notificationRowOf,
  offsetsOf,
  planReminders,
  reminderCompany,
  reminderItemId,
  reminderPlanItem,
  type ReminderCandidate,
  type ReminderCompany,
  type SkipReason,
} from './plan.js';
import {
  claimReminders,
  insertReminderNotifications,
  markReminderFailed,
  markReminderSent,
  readReminderCandidates,
  readReminderCompanies,
  sweepReminderClaims,
  type ReminderNotification,
} from './sql-reminders.js';

/**
 * The appointment reminders part: sweep dead runs' claims; read the companies' settings and the
 * candidates; plan (plan.ts); then chunk by chunk claim, send through the send protocol, record
 * the answers and notify the employees.
 */

/** At most this many reminder emails per run: a run must answer inside its time budget. */
const MAX_REMINDERS_PER_RUN = 500;
/** Claims are taken in chunks, and the budget is checked between chunks, so a run never holds
 *  claims it has no time left to send (a claim left `sending` would end up `unknown`). */
const CLAIM_CHUNK = 25;
/** Parallel SMTP sends within a chunk (a handful of connections to the platform relay). */
const SEND_CONCURRENCY = 4;
/** Time kept back before claiming a chunk: a chunk's sends get at least this long before the deadline. */
const CHUNK_RESERVE_MS = 5_000;

type ReminderStats = {
  /** Where emails go: smtp, outbox (.eml files, the embedded default) or unconfigured. */
  via: string;
  candidates: number;
  sent: number;
  alreadySent: number;
  inProgress: number;
  unknown: number;
  markedUnknown: number;
  /** Claims of dead runs given back (never handed to SMTP). */
  releasedClaims: number;
  /** Sent this run without an SMTP answer after DATA: recorded `unknown`, never re-sent. */
  noAnswer: number;
  failed: number;
  retryLater: number;
  lostRace: number;
  deferred: number;
  notificationsCreated: number;
  skipped: Partial<Record<SkipReason | 'budget', number>>;
};

export async function runReminders(
  ctx: JobContext,
  errors: ItemError[],
  plan: unknown[],
): Promise<{ stats: ReminderStats; partial: boolean }> {
  const sender = ctx.mail.platform();
  const stats: ReminderStats = {
    via: sender.kind,
    candidates: 0,
    sent: 0,
    alreadySent: 0,
    inProgress: 0,
    unknown: 0,
    markedUnknown: 0,
    releasedClaims: 0,
    noAnswer: 0,
    failed: 0,
    retryLater: 0,
    lostRace: 0,
    deferred: 0,
    notificationsCreated: 0,
    skipped: {},
  };
  const swept = await sweepReminderClaims(ctx.db, { scope: ctx.scope, dryRun: ctx.dryRun });
  stats.markedUnknown = swept.markedUnknown;
  stats.releasedClaims = swept.released;

  const companyRows = await readReminderCompanies(ctx.db, { now: ctx.now, scope: ctx.scope });
  const companies = new Map<number, ReminderCompany>();
  for (const row of companyRows) {
    const { company, problems } = reminderCompany(row.company_id, row.name, row.settings);
    companies.set(row.company_id, company);
    if (problems.length) {
      errors.push({ scope: 'company', id: row.company_id, code: 'settings_invalid', message: problems.join('; ').slice(0, 300) });
    }
  }
  const offsets = offsetsOf(companies.values());
  const candidates = (await readReminderCandidates(ctx.db, { now: ctx.now, scope: ctx.scope, offsets })).map(candidateOf);
  await markBouncedRecipients(ctx.db, candidates); // docs/bounces.md
  const decided = planReminders(candidates, companies, MAX_REMINDERS_PER_RUN);
  stats.candidates = candidates.length;
  stats.alreadySent = decided.alreadySent;
  stats.inProgress = decided.inProgress;
  stats.unknown = decided.unknown;
  stats.skipped = { ...decided.skipped };
  stats.deferred = decided.deferred;
  for (const bad of decided.invalidRecipients) {
    errors.push({ scope: 'appointment_reminder', id: reminderItemId(bad), code: 'invalid_recipient', message: bad.message });
  }
  const render = (row: ReminderCandidate) =>
    renderReminder(row, companies.get(row.companyId)!, { frontendUrl: ctx.config.FRONTEND_URL, mailFrom: ctx.config.MAIL_FROM });

  if (ctx.dryRun) {
    for (const row of decided.send.slice(0, PLAN_SAMPLE)) {
      const m = render(row);
      plan.push(reminderPlanItem(row, m.subject));
    }
    return { stats, partial: decided.deferred > 0 };
  }

  const limit = pLimit(SEND_CONCURRENCY);
  const claimedSend = createClaimedSend({
    db: ctx.db,
    table: REMINDER_SENDS,
    runId: ctx.runId,
    deadline: ctx.deadline,
    stopSignal: ctx.stopSignal,
    log: ctx.log,
  });
  let partial = decided.deferred > 0;
  for (let i = 0; i < decided.send.length; i += CLAIM_CHUNK) {
    const chunk = decided.send.slice(i, i + CLAIM_CHUNK);
    if (budgetSpent(ctx, CHUNK_RESERVE_MS)) {
      const left = decided.send.length - i;
      stats.skipped.budget = (stats.skipped.budget ?? 0) + left;
      partial = true;
      break;
    }
    ctx.progress?.(`${stats.sent}/${decided.send.length} reminders sent`);
    const claimed = await claimReminders(ctx.db, { now: ctx.now, scope: ctx.scope, runId: ctx.runId, items: claimItemsOf(chunk) });
    stats.lostRace += chunk.length - claimed.length;
    const byKey = new Map(chunk.map((r) => [reminderItemId(r), r]));
    const sentNotifications: ReminderNotification[] = [];
    await Promise.all(
      claimed.map((claim) =>
        limit(async () => {
          const row = byKey.get(reminderItemId({ appointmentId: claim.appointment_id, hoursBefore: claim.hours_before }))!;
          const m = render(row);
          if (m.unknownVariables.length) {
            errors.push({
              scope: 'company',
              id: row.companyId,
              code: 'template_unknown_variable',
              message: OPERATOR_TEXTS.unknownTemplateVariables(m.unknownVariables),
            });
          }
          const outcome = await claimedSend.send(claim.id, sender, {
            from: m.from,
            to: m.to,
            replyTo: m.replyTo,
            subject: m.subject,
            text: m.text,
            messageId: m.messageId,
          });
          const itemId = reminderItemId(row);
          switch (outcome.state) {
            case 'sent':
              break;
            case 'not_started':
              stats.skipped.budget = (stats.skipped.budget ?? 0) + 1;
              partial = true;
              return;
            case 'lost':
              stats.lostRace++;
              return;
            case 'unknown':
              stats.noAnswer++;
              errors.push({
                scope: 'appointment_reminder',
                id: itemId,
                code: outcome.error.code,
                message: noSmtpAnswerText(outcome.error.message),
              });
              return;
            case 'retry':
            case 'failed': {
              const e = outcome.error;
              // 5xx: the address is refused, retrying would only bounce again; a retry was given
              // back by the protocol (REMINDER_SENDS.policy)
              if (outcome.state === 'failed') {
                await markReminderFailed(ctx.db, claim.id, `${e.code}: ${e.message}`);
                stats.failed++;
              } else {
                stats.retryLater++;
              }
              errors.push({ scope: 'appointment_reminder', id: itemId, code: e.code, message: e.message });
              return;
            }
          }
          await markReminderSent(ctx.db, claim.id, m.messageId);
          stats.sent++;
          sentNotifications.push(notificationRowOf(claim.id, m.notification));
        }),
      ),
    );
    stats.notificationsCreated += await insertReminderNotifications(ctx.db, sentNotifications);
  }
  return { stats, partial };
}
