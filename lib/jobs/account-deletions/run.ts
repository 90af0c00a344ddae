import { sql } from 'drizzle-orm';
import { pgErrorCode, queryRows, rootDbError, type Executor, type Tx } from '../../../db/client.js';
import { DELETION_ORDER } from '../../../db/schema/deletion-order.js';
import { accountDeletionLog, companies, companySettings, users } from '../../../db/schema/index.js';
import { budgetSpent, type ItemError, type Job, type JobContext, type JobResult } from '../../cron/types.js';
import { maskEmail } from '../../log.js';
import { MailError } from '../../mail/transport.js';
import { createClaimedSend, sweepClaims, type ClaimedSend } from '../../mail/claimed-send.js';
import { confirmationMail, reminderMail } from './emails.js';
import {
  addCounts, decideDeletion, emailSha256, handlesGlobalWork, reminderFailureAction, reminderWindow,
  type DeletionDecision, type LockedUser, type OtherUser,
} from './plan.js';
import {
  CONFIRMATION_KIND, DELETION_EMAIL_CLAIMS, REMINDER_KIND, claimMailSend, recordMailSend,
  countCompanyRows, countExpiredInvoices, countUserRows, deleteCompanyRows, detachRetained, purgeExpiredInvoices,
  intArray, tableName, userScopeFilter, userStatements, type UserStatement,
} from './sql.js';

/**
 * The effectful half of account deletion (SPEC §5.3): selection, one transaction per account
 * (company row lock → user row lock → re-check → set-based deletes → log row), emails after commit,
 * the purge of expired retained invoices, and the J-7 reminders.
 */

/**
 * A lock held longer than this belongs to a stuck transaction (or another deletion of the same
 * company): the account is left for the next run rather than eating the whole budget.
 */
export const LOCK_TIMEOUT_MS = 5_000;
/** Retained invoices purged per run: bounded so a large backlog cannot exceed the budget. */
export const PURGE_BATCH = 2_000;
/** Reminders claimed per statement: a claim is only made for mail the run can still send. */
export const REMINDER_CLAIM_BATCH = 25;

export type DeletionHooks = {
  /** After each table's statement of a deletion (tests inject a crash here). */
  afterStep?(table: string, userId: number): void | Promise<void>;
  /** After the account's rows are locked and re-checked, before deleting (tests: races). */
  afterLock?(userId: number): void | Promise<void>;
};

type Candidate = { id: number; companyId: number | null };

type AccountOutcome =
  | { done: false; reason: string }
  | {
      done: true;
      decision: Exclude<DeletionDecision, { kind: 'skip' }>;
      logId: number;
      email: string;
      fullName: string | null;
      companyName: string | null;
      timezone: string | null;
      deleted: Record<string, number>;
      nulled: Record<string, number>;
      retainedInvoices: number;
    };

type Stats = {
  due: number;
  remaining: number;
  deletedUsers: number;
  deletedCompanies: number;
  skippedCancelled: number;
  busy: number;
  failures: number;
  rowsDeleted: Record<string, number>;
  rowsNulled: Record<string, number>;
  ownersHandedOver: number;
  retainedInvoices: number;
  purgedInvoices: number;
  remindersSent: number;
  remindersLeft: number;
  confirmationsSent: number;
  emailFailures: number;
  /** Emails without an SMTP answer after DATA this run: `unknown`, never re-sent. */
  emailsUnknown: number;
  /** Claims of dead runs: given back (never handed over) / marked `unknown` (handed over). */
  releasedClaims: number;
  markedUnknown: number;
};

const newStats = (): Stats => ({
  due: 0, remaining: 0, deletedUsers: 0, deletedCompanies: 0, skippedCancelled: 0, busy: 0, failures: 0,
  rowsDeleted: {}, rowsNulled: {}, ownersHandedOver: 0, retainedInvoices: 0, purgedInvoices: 0,
  remindersSent: 0, remindersLeft: 0, confirmationsSent: 0, emailFailures: 0, emailsUnknown: 0, releasedClaims: 0, markedUnknown: 0,
});

/** The run's two protocol instances: a reminder refused for now is given back, a confirmation kept (`failed`). */
function deletionSenders(ctx: JobContext) {
  const base = { db: ctx.db, table: DELETION_EMAIL_CLAIMS, runId: ctx.runId, deadline: ctx.deadline, stopSignal: ctx.stopSignal, log: ctx.log };
  return { reminder: createClaimedSend(base), confirmation: createClaimedSend({ ...base, releaseOnRetry: false }) };
}
type DeletionSenders = ReturnType<typeof deletionSenders>;

const LOCK_NOT_AVAILABLE = '55P03'; // lock_timeout expired
const DEADLOCK = '40P01';

function itemError(scope: string, id: number, err: unknown): ItemError {
  const code = pgErrorCode(err);
  const root = rootDbError(err) as Error | undefined;
  const message = String(root?.message ?? err).split('\n')[0].slice(0, 200);
  if (err instanceof MailError) return { scope, id, code: err.code, message };
  return { scope, id, code: typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? 'database_error' : 'deletion_failed', message };
}

/** Due requests, oldest first, in the run's tenants. */
async function selectDue(db: Executor, ctx: JobContext, limit: number): Promise<{ batch: Candidate[]; total: number }> {
  const where = sql`${users.deletionRequestedAt} is not null and ${users.deletionScheduledAt} <= ${ctx.now} and ${userScopeFilter(ctx.scope)}`;
  const batch = await queryRows<{ id: number; company_id: number | null }>(db, sql`
    select ${users.id} as id, ${users.companyId} as company_id from ${users} where ${where}
    order by ${users.deletionScheduledAt}, ${users.id} limit ${limit}`);
  const [{ n }] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from ${users} where ${where}`);
  return { batch: batch.map((r) => ({ id: Number(r.id), companyId: r.company_id === null ? null : Number(r.company_id) })), total: Number(n) };
}

const asDate = (v: unknown): Date | null => (v === null || v === undefined ? null : v instanceof Date ? v : new Date(String(v)));

/** One account, one transaction: locks, re-check, deletes, log row. Nothing is visible until commit. */
async function deleteAccount(ctx: JobContext, cand: Candidate, hooks: DeletionHooks): Promise<AccountOutcome> {
  return ctx.db.transaction(async (tx: Tx) => {
    await tx.execute(sql`select set_config('lock_timeout', ${`${LOCK_TIMEOUT_MS}ms`}, true)`);
    // company row first, then the user row: every deletion takes them in this order (no deadlock),
    // and two deletions in one company are serialized, so "last active user" is decided on fresh rows
    let companyName: string | null = null;
    let timezone: string | null = null;
    if (cand.companyId !== null) {
      const c = await queryRows<{ name: string; tz: string | null }>(tx, sql`
        select ${companies.name} as name,
          (select ${companySettings.settings}->'company_info'->>'timezone' from ${companySettings} where ${companySettings.companyId} = ${companies.id}) as tz
        from ${companies} where ${companies.id} = ${cand.companyId} for update of ${companies}`);
      if (c.length === 0) return { done: false, reason: 'gone' };
      companyName = c[0].name;
      timezone = c[0].tz;
    }
    const lockedRows = await queryRows<Record<string, unknown>>(tx, sql`
      select id, email, full_name, role, company_id, is_active, deletion_requested_at, deletion_scheduled_at
      from ${users} where ${users.id} = ${cand.id} for update`);
    const r = lockedRows[0];
    const locked: LockedUser | undefined = r && {
      id: Number(r.id), email: String(r.email), fullName: (r.full_name as string | null) ?? null, role: String(r.role),
      companyId: r.company_id === null ? null : Number(r.company_id), isActive: Boolean(r.is_active),
      deletionRequestedAt: asDate(r.deletion_requested_at), deletionScheduledAt: asDate(r.deletion_scheduled_at),
    };
    const others: OtherUser[] = cand.companyId === null ? [] : (await queryRows<Record<string, unknown>>(tx, sql`
      select id, role, is_active, created_at, deletion_requested_at from ${users}
      where ${users.companyId} = ${cand.companyId} and ${users.id} <> ${cand.id}`)).map((o) => ({
      id: Number(o.id), role: String(o.role), isActive: Boolean(o.is_active),
      createdAt: asDate(o.created_at)!, deletionRequestedAt: asDate(o.deletion_requested_at),
    }));
    const decision = decideDeletion({ selectedCompanyId: cand.companyId, locked, others, now: ctx.now });
    if (decision.kind === 'skip') return { done: false, reason: decision.reason };
    await hooks.afterLock?.(cand.id);

    const deleted: Record<string, number> = {};
    const nulled: Record<string, number> = {};
    let retainedInvoices = 0;
    const runUserStatements = async (statements: UserStatement[]) => {
      for (const st of statements) {
        const n = Number((await queryRows<{ n: number }>(tx, st.query))[0]?.n ?? 0);
        const into = st.kind === 'deleted' ? deleted : nulled;
        into[st.table] = (into[st.table] ?? 0) + n;
        await hooks.afterStep?.(st.table, cand.id);
      }
    };
    if (decision.kind === 'company') {
      for (const step of DELETION_ORDER) {
        const name = tableName(step.table);
        // the company's users go now: first whatever still points at them from outside the company
        if (step.user.action === 'self') await runUserStatements(userStatements({ companyId: decision.companyId }));
        deleted[name] = (deleted[name] ?? 0) + await deleteCompanyRows(tx, step, decision.companyId);
        if (step.retain) {
          const kept = await detachRetained(tx, step, decision.companyId);
          if (name === 'invoices') retainedInvoices = kept;
        }
        await hooks.afterStep?.(name, cand.id);
      }
    } else {
      await runUserStatements(userStatements({ userId: cand.id }));
      if (decision.handOverTo !== null) {
        await tx.execute(sql`update ${users} set role = 'owner' where ${users.id} = ${decision.handOverTo}`);
      }
    }
    const counts = {
      deleted, ...(Object.keys(nulled).length ? { nulled } : {}),
      ...(decision.kind === 'company' ? { retainedInvoices } : {}),
      ...(decision.kind === 'user' && decision.handOverTo !== null ? { ownerHandedOver: 1 } : {}),
    };
    const [log] = await queryRows<{ id: number }>(tx, sql`
      insert into ${accountDeletionLog} (user_id, company_id, email_sha256, scope, counts)
      values (${cand.id}, ${cand.companyId}, ${emailSha256(locked!.email)}, ${decision.kind}, ${JSON.stringify(counts)}::jsonb)
      returning id`);
    return {
      done: true, decision, logId: Number(log.id), email: locked!.email, fullName: locked!.fullName,
      companyName, timezone, deleted, nulled, retainedInvoices,
    };
  });
}

/** The confirmation through the send protocol: it is never retried (the address is gone with the account). */
async function sendConfirmation(ctx: JobContext, claimed: ClaimedSend, logId: number, email: string, mail: ReturnType<typeof confirmationMail>,
  stats: Stats, errors: ItemError[]) {
  const id = await claimMailSend(ctx.db, `${CONFIRMATION_KIND}:${logId}`, CONFIRMATION_KIND, ctx.runId);
  if (id === null) return; // already claimed: never twice
  const outcome = await claimed.send(id, ctx.mail.platform(), mail);
  if (outcome.state === 'sent') {
    stats.confirmationsSent++;
    await recordMailSend(ctx.db, id, { sent: true, messageId: mail.messageId });
    return;
  }
  if (outcome.state === 'lost') return;
  if (outcome.state === 'unknown') stats.emailsUnknown++;
  else stats.emailFailures++;
  const e = 'error' in outcome ? outcome.error : new MailError('smtp_deadline', 'not sent before the run deadline', false);
  if (outcome.state === 'retry' || outcome.state === 'failed') await recordMailSend(ctx.db, id, { sent: false, error: `${e.code}: ${e.message}` });
  errors.push({ scope: 'confirmation', id: logId, code: e.code, message: e.message });
  ctx.log.warn({ logId, to: maskEmail(email), code: e.code }, 'confirmation email not sent; the deletion stands');
}

async function runDeletions(ctx: JobContext, stats: Stats, errors: ItemError[], hooks: DeletionHooks, senders: DeletionSenders): Promise<boolean> {
  const { batch, total } = await selectDue(ctx.db, ctx, ctx.config.DELETION_BATCH);
  stats.due = total;
  let partial = false;
  for (const [done, cand] of batch.entries()) {
    if (budgetSpent(ctx)) { partial = true; break; }
    ctx.progress?.(`${done}/${batch.length} accounts`);
    let outcome: AccountOutcome;
    try {
      outcome = await deleteAccount(ctx, cand, hooks);
    } catch (err) {
      const code = pgErrorCode(err);
      if (code === LOCK_NOT_AVAILABLE || code === DEADLOCK) {
        stats.busy++;
        ctx.log.warn({ userId: cand.id, code }, 'account busy; left for the next run');
      } else {
        stats.failures++;
        errors.push(itemError('account', cand.id, err));
        ctx.log.error({ userId: cand.id, err: itemError('account', cand.id, err) }, 'account deletion failed; rolled back');
      }
      continue;
    }
    if (!outcome.done) {
      if (outcome.reason === 'cancelled') stats.skippedCancelled++;
      ctx.log.info({ userId: cand.id, reason: outcome.reason }, 'account not deleted');
      continue;
    }
    const { decision } = outcome;
    stats.deletedUsers++;
    if (decision.kind === 'company') stats.deletedCompanies++;
    if (decision.kind === 'user' && decision.handOverTo !== null) stats.ownersHandedOver++;
    addCounts(stats.rowsDeleted, outcome.deleted);
    addCounts(stats.rowsNulled, outcome.nulled);
    stats.retainedInvoices += outcome.retainedInvoices;
    ctx.log.info({ userId: cand.id, companyId: cand.companyId, scope: decision.kind, logId: outcome.logId }, 'account deleted');
    // after commit: the deletion stands whatever the mail server says
    const mail = confirmationMail({
      userId: cand.id, logId: outcome.logId, to: outcome.email, fullName: outcome.fullName, scope: decision.kind,
      companyName: outcome.companyName, deletedAt: ctx.now, timezone: outcome.timezone,
      retainedInvoices: outcome.retainedInvoices, from: ctx.config.MAIL_FROM,
    });
    await sendConfirmation(ctx, senders.confirmation, outcome.logId, outcome.email, mail, stats, errors);
  }
  stats.remaining = Math.max(0, total - stats.deletedUsers - stats.skippedCancelled);
  return partial;
}

async function runPurge(ctx: JobContext, stats: Stats): Promise<void> {
  const res = await ctx.db.transaction((tx) => purgeExpiredInvoices(tx, ctx.now, PURGE_BATCH));
  stats.purgedInvoices += res.invoices;
  if (res.invoices > 0) ctx.log.info({ purged: res.invoices, rows: res.rows }, 'expired retained invoices purged');
}

type ClaimedReminder = { id: number; email: string; full_name: string | null; deletion_scheduled_at: Date | string; tz: string | null; send_id: number | null };

/** Claims reminders that are due (one UPDATE … RETURNING), so two runs never send the same one. */
async function claimReminders(ctx: JobContext, limit: number, exclude: readonly number[]): Promise<ClaimedReminder[]> {
  const { after, until } = reminderWindow(ctx.now);
  return queryRows<ClaimedReminder>(ctx.db, sql`
    with claimed as (
      update ${users} set deletion_reminder_sent_at = ${ctx.now}
      where ${users.id} in (
        select ${users.id} from ${users}
        where ${users.deletionRequestedAt} is not null
          and ${users.deletionScheduledAt} > ${after} and ${users.deletionScheduledAt} <= ${until}
          and (${users.deletionReminderSentAt} is null or ${users.deletionReminderSentAt} < ${users.deletionRequestedAt})
          and ${userScopeFilter(ctx.scope)}
          and ${users.id} <> all(${intArray(exclude)}::int[])
        order by ${users.deletionScheduledAt}, ${users.id}
        limit ${limit}
        for update skip locked)
      returning id, email, full_name, company_id, deletion_scheduled_at, deletion_requested_at),
    -- the email's own claim: one per (user, request), whatever happens to the user row
    sends as (
      insert into mail_sends (key, kind, claimed_at, claimed_by, delivery)
      select ${REMINDER_KIND} || ':' || c.id || ':' || floor(extract(epoch from c.deletion_requested_at) * 1000)::bigint,
             ${REMINDER_KIND}, now(), ${ctx.runId}, 'sending'
      from claimed c
      on conflict (key) do nothing
      returning id, split_part(key, ':', 2)::int as user_id)
    select c.id, c.email, c.full_name, c.deletion_scheduled_at,
      (select s.settings->'company_info'->>'timezone' from company_settings s where s.company_id = c.company_id) as tz,
      (select m.id from sends m where m.user_id = c.id) as send_id
    from claimed c`);
}

async function runReminders(ctx: JobContext, stats: Stats, errors: ItemError[], claimed: ClaimedSend): Promise<boolean> {
  // a temporary failure gives the claim back for the next run; this run does not retry it
  const failedThisRun: number[] = [];
  for (;;) {
    if (budgetSpent(ctx)) return true;
    const batch = await claimReminders(ctx, REMINDER_CLAIM_BATCH, failedThisRun);
    if (batch.length === 0) return false;
    for (const [i, r] of batch.entries()) {
      const id = Number(r.id);
      if (r.send_id === null) { failedThisRun.push(id); continue; } // this request's email was claimed before: never twice
      const sendId = Number(r.send_id);
      if (budgetSpent(ctx)) {
        await claimed.release(batch.slice(i).filter((x) => x.send_id !== null).map((x) => Number(x.send_id)));
        stats.remindersLeft += batch.length - i;
        return true;
      }
      const mail = reminderMail({
        userId: id, to: r.email, fullName: r.full_name, scheduledAt: asDate(r.deletion_scheduled_at)!,
        timezone: r.tz, from: ctx.config.MAIL_FROM, frontendUrl: ctx.config.FRONTEND_URL,
      });
      const outcome = await claimed.send(sendId, ctx.mail.platform(), mail);
      switch (outcome.state) {
        case 'sent':
          stats.remindersSent++;
          await recordMailSend(ctx.db, sendId, { sent: true, messageId: mail.messageId });
          break;
        case 'not_started': stats.remindersLeft++; break;
        case 'lost': break;
        case 'unknown':
          stats.emailsUnknown++;
          errors.push({ scope: 'reminder', id, code: outcome.error.code, message: `no SMTP answer after the message was sent (never re-sent automatically): ${outcome.error.message}` });
          break;
        case 'retry':
        case 'failed': {
          const e = outcome.error;
          stats.emailFailures++;
          errors.push({ scope: 'reminder', id, code: e.code, message: e.message });
          // a 4xx was given back by the protocol (the next run retries: a rare duplicate reminder
          // beats none before an irreversible deletion); a 5xx keeps the claim
          if (outcome.state === 'failed' || reminderFailureAction(e) === 'keep') await recordMailSend(ctx.db, sendId, { sent: false, error: `${e.code}: ${e.message}` });
          else failedThisRun.push(id);
          ctx.log.warn({ userId: id, to: maskEmail(r.email), code: e.code, retryNextRun: outcome.state === 'retry' }, 'deletion reminder failed');
        }
      }
    }
  }
}

/** Dry run: the plan of what would happen, nothing written, nothing sent. */
async function dryRun(ctx: JobContext): Promise<JobResult> {
  const stats = newStats();
  const plan: unknown[] = [];
  const { batch, total } = await selectDue(ctx.db, ctx, ctx.config.DELETION_BATCH);
  stats.due = total;
  for (const cand of batch) {
    const others = cand.companyId === null ? [] : await queryRows<{ n: number }>(ctx.db, sql`
      select count(*)::int as n from ${users} where ${users.companyId} = ${cand.companyId} and ${users.id} <> ${cand.id} and ${users.isActive}`);
    if (cand.companyId !== null && Number(others[0].n) === 0) {
      const c = await countCompanyRows(ctx.db, cand.companyId);
      stats.deletedCompanies++;
      addCounts(stats.rowsDeleted, c.deleted);
      stats.retainedInvoices += c.retained.invoices ?? 0;
      plan.push({ action: 'delete-company', userId: cand.id, companyId: cand.companyId, rows: c.deleted, retained: c.retained });
    } else {
      const c = await countUserRows(ctx.db, cand.id);
      addCounts(stats.rowsDeleted, c.deleted);
      addCounts(stats.rowsNulled, c.nulled);
      plan.push({ action: 'delete-user', userId: cand.id, companyId: cand.companyId, rows: c.deleted, nulled: c.nulled });
    }
    stats.deletedUsers++;
  }
  stats.remaining = total - batch.length;
  if (handlesGlobalWork(ctx.scope)) stats.purgedInvoices = await countExpiredInvoices(ctx.db, ctx.now);
  const { after, until } = reminderWindow(ctx.now);
  const [rem] = await queryRows<{ n: number }>(ctx.db, sql`
    select count(*)::int as n from ${users}
    where ${users.deletionRequestedAt} is not null
      and ${users.deletionScheduledAt} > ${after} and ${users.deletionScheduledAt} <= ${until}
      and (${users.deletionReminderSentAt} is null or ${users.deletionReminderSentAt} < ${users.deletionRequestedAt})
      and ${userScopeFilter(ctx.scope)}`);
  stats.remindersSent = Number(rem.n);
  return { stats: stats as unknown as Record<string, unknown>, errors: [], partial: false, plan: plan.slice(0, 50) };
}

export function createAccountDeletionsJob(opts: { hooks?: DeletionHooks } = {}): Job {
  const hooks = opts.hooks ?? {};
  return {
    id: 'account-deletions',
    async run(ctx) {
      if (ctx.dryRun) return dryRun(ctx);
      const stats = newStats();
      const errors: ItemError[] = [];
      // claims of dead runs: never handed to SMTP → given back; handed over → `unknown`
      const swept = await sweepClaims(ctx.db, DELETION_EMAIL_CLAIMS);
      stats.releasedClaims = swept.released;
      stats.markedUnknown = swept.unknownIds.length;
      const senders = deletionSenders(ctx);
      let partial = await runDeletions(ctx, stats, errors, hooks, senders);
      if (!partial && handlesGlobalWork(ctx.scope)) {
        if (budgetSpent(ctx)) partial = true;
        else await runPurge(ctx, stats);
      }
      if (!partial) partial = await runReminders(ctx, stats, errors, senders.reminder);
      return { stats: stats as unknown as Record<string, unknown>, errors, partial };
    },
  };
}
