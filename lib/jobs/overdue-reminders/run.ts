import pLimit from 'p-limit';
import { markBouncedRecipients } from '../../bounces/reminders.js';
import { budgetSpent, type ItemError, type JobContext, type JobResult } from '../../cron/types.js';
import { MailError, classifySmtpError } from '../../mail/transport.js';
import { checkZone, loadPostgresZones } from '../../time/zone.js';
import { fullErrorForLog, publicError } from '../../cron/errors.js';
import { createClaimedSend } from '../../mail/claimed-send.js';
import {
  planReminders, reminderCompany, renderReminder, type ReminderCandidate, type ReminderCompany, type SkipReason,
} from './plan.js';
import {
  REMINDER_CLAIMS, claimReminders, companiesWithInvalidZone, expireTrials, insertReminderNotifications, markReminderFailed, markReminderSent,
  planNotificationPart, readReminderCandidates, readReminderCompanies, runNotificationPart, sweepReminderClaims,
  type NotificationPart, type PartResult, type ReminderNotification,
} from './sql.js';

/** At most this many reminder emails per run: a run must answer inside its budget (SPEC §2.6). */
export const MAX_REMINDERS_PER_RUN = 500;
/** Claims are taken in chunks, and the budget is checked between chunks, so a run never holds
 *  claims it has no time left to send (a claim left `sending` would end up `unknown`). */
export const CLAIM_CHUNK = 25;
/** Parallel SMTP sends within a chunk (a handful of connections to the platform relay). */
export const SEND_CONCURRENCY = 4;
/** Time kept back before claiming a chunk: a chunk's sends get at least this long before the deadline. */
const CHUNK_RESERVE_MS = 5_000;
const PLAN_SAMPLE = 50;

/** A part of the run failed (a bug, the database): the others still ran, the run answers 500. */
export class PartFailedError extends Error {
  readonly code = 'part_failed';
}

type ReminderStats = {
  /** Where emails go: smtp, outbox (.eml files, the embedded default) or unconfigured. */
  via: string;
  candidates: number; sent: number; alreadySent: number; inProgress: number; unknown: number; markedUnknown: number;
  /** Claims of dead runs given back (never handed to SMTP). */
  releasedClaims: number;
  /** Sent this run without an SMTP answer after DATA: recorded `unknown`, never re-sent. */
  noAnswer: number;
  failed: number; retryLater: number; lostRace: number; deferred: number; notificationsCreated: number;
  skipped: Partial<Record<SkipReason | 'budget', number>>;
};

export async function runOverdueReminders(ctx: JobContext): Promise<JobResult> {
  const errors: ItemError[] = [];
  const plan: unknown[] = [];
  const failedParts: string[] = [];
  const stats: Record<string, unknown> = {};
  let partial = false;
  const params = { now: ctx.now, scope: ctx.scope, frontendUrl: ctx.config.FRONTEND_URL };

  // Each part is its own statement(s), in autocommit: one part failing cannot poison another
  // (defect 35); the failure is reported, never swallowed.
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
      // the driver's cause, never the statement text, a host or a port (lib/cron/errors.ts)
      const e = publicError(err);
      errors.push({ scope: 'part', id: name, code: e.code === 'database_error' ? e.code : 'part_failed', message: e.message });
    }
  };

  // the zone rule needs PostgreSQL's zone names (cached per process) before any statement
  await loadPostgresZones(ctx.db);
  await part('zones', async () => {
    for (const bad of await companiesWithInvalidZone(ctx.db, ctx.scope)) {
      errors.push({ scope: 'company', id: bad.companyId, code: 'invalid_timezone', message: checkZone(bad.timezone).problem ?? 'invalid zone' });
    }
  });

  await part('trials', async () => {
    const r = await expireTrials(ctx.db, { ...params, dryRun: ctx.dryRun });
    stats.trials = { expired: r.expired };
    if (ctx.dryRun) plan.push(...r.companyIds.slice(0, 10).map((companyId) => ({ part: 'trials', action: 'expire_trial', companyId })));
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
    const detail = errors.filter((e) => e.scope === 'part').map((e) => `${e.id}: ${e.message}`).join('; ');
    throw new PartFailedError(`${failedParts.length} part(s) failed (${detail}); the other parts ran`);
  }
  return { stats, errors, partial, ...(ctx.dryRun ? { plan: plan.slice(0, PLAN_SAMPLE) } : {}) };
}

async function runReminders(ctx: JobContext, errors: ItemError[], plan: unknown[]): Promise<{ stats: ReminderStats; partial: boolean }> {
  const sender = ctx.mail.platform();
  const stats: ReminderStats = {
    via: sender.kind, candidates: 0, sent: 0, alreadySent: 0, inProgress: 0, unknown: 0, markedUnknown: 0, releasedClaims: 0, noAnswer: 0,
    failed: 0, retryLater: 0,
    lostRace: 0, deferred: 0, notificationsCreated: 0, skipped: {},
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
  // disabled companies are read too, so the planner can count what their setting held back
  const offsets = [...companies.values()].flatMap((c) => c.offsets.map((o) => ({ company_id: c.companyId, hours_before: o.hoursBefore })));
  const candidates = await readReminderCandidates(ctx.db, { now: ctx.now, scope: ctx.scope, offsets });
  await markBouncedRecipients(ctx.db, candidates); // docs/bounces.md
  const decided = planReminders(candidates, companies, ctx.now, MAX_REMINDERS_PER_RUN);
  stats.candidates = candidates.length;
  stats.alreadySent = decided.alreadySent;
  stats.inProgress = decided.inProgress;
  stats.unknown = decided.unknown;
  stats.skipped = { ...decided.skipped };
  stats.deferred = decided.deferred;
  for (const bad of decided.invalidRecipients) {
    errors.push({ scope: 'appointment_reminder', id: `${bad.appointmentId}:${bad.hoursBefore}`, code: 'invalid_recipient', message: bad.message });
  }
  const render = (row: ReminderCandidate) =>
    renderReminder(row, companies.get(row.companyId)!, { frontendUrl: ctx.config.FRONTEND_URL, mailFrom: ctx.config.MAIL_FROM });

  if (ctx.dryRun) {
    for (const row of decided.send.slice(0, PLAN_SAMPLE)) {
      const m = render(row);
      plan.push({ part: 'reminders', action: 'send_reminder', appointmentId: row.appointmentId, hoursBefore: row.hoursBefore, start: row.startIso, subject: m.subject });
    }
    return { stats, partial: decided.deferred > 0 };
  }

  const limit = pLimit(SEND_CONCURRENCY);
  const claimedSend = createClaimedSend({ db: ctx.db, table: REMINDER_CLAIMS, runId: ctx.runId, deadline: ctx.deadline, stopSignal: ctx.stopSignal, log: ctx.log });
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
    const claimed = await claimReminders(ctx.db, {
      now: ctx.now, scope: ctx.scope, runId: ctx.runId,
      items: chunk.map((r) => ({ appointment_id: r.appointmentId, hours_before: r.hoursBefore, start_iso: r.startIso })),
    });
    stats.lostRace += chunk.length - claimed.length;
    const byKey = new Map(chunk.map((r) => [`${r.appointmentId}:${r.hoursBefore}`, r]));
    const sentNotifications: ReminderNotification[] = [];
    await Promise.all(claimed.map((claim) => limit(async () => {
      const row = byKey.get(`${claim.appointment_id}:${claim.hours_before}`)!;
      const m = render(row);
      if (m.unknownVariables.length) {
        errors.push({ scope: 'company', id: row.companyId, code: 'template_unknown_variable', message: `reminder template: unknown {${m.unknownVariables.join('}, {')}}` });
      }
      const outcome = await claimedSend.send(claim.id, sender, { from: m.from, to: m.to, replyTo: m.replyTo, subject: m.subject, text: m.text, messageId: m.messageId });
      const itemId = `${row.appointmentId}:${row.hoursBefore}`;
      switch (outcome.state) {
        case 'sent': break;
        case 'not_started':
          stats.skipped.budget = (stats.skipped.budget ?? 0) + 1;
          partial = true;
          return;
        case 'lost': stats.lostRace++; return;
        case 'unknown':
          stats.noAnswer++;
          errors.push({ scope: 'appointment_reminder', id: itemId, code: outcome.error.code, message: `no SMTP answer after the message was sent (never re-sent automatically): ${outcome.error.message}` });
          return;
        case 'retry':
        case 'failed': {
          const e = outcome.error;
          // 5xx: the address is refused, retrying would only bounce again; SMTP not configured
          // yet is given back like a 4xx (the protocol already gave those back)
          if (outcome.state === 'failed' && e.code !== 'smtp_not_configured') {
            await markReminderFailed(ctx.db, claim.id, `${e.code}: ${e.message}`);
            stats.failed++;
          } else {
            if (outcome.state === 'failed') await claimedSend.release([claim.id]);
            stats.retryLater++;
          }
          errors.push({ scope: 'appointment_reminder', id: itemId, code: e.code, message: e.message });
          return;
        }
      }
      await markReminderSent(ctx.db, claim.id, m.messageId);
      stats.sent++;
      sentNotifications.push({ reminder_id: claim.id, ...pickNotification(m.notification) });
    })));
    stats.notificationsCreated += await insertReminderNotifications(ctx.db, sentNotifications);
  }
  return { stats, partial };
}

function pickNotification(n: { title: string; message: string; linkUrl: string; linkText: string; dedupeKey: string }) {
  return { title: n.title, message: n.message, link_url: n.linkUrl, link_text: n.linkText, dedupe_key: n.dedupeKey };
}
