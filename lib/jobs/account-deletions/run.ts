import { isLockConflict, pgErrorCode, withTransientRetry, type Executor, type Tx } from '../../../db/client.js';
import { DELETION_ORDER } from '../../../db/schema/deletion-order.js';
import { classifyJobError } from '../../cron/errors.js';
import { budgetSpent, type ItemError, type JobContext, type JobResult } from '../../cron/types.js';
import { maskEmail } from '../../log.js';
import { RECORDED_BY_SENDER, createClaimedSend, sweepClaims, type ClaimedSend } from '../../mail/claimed-send.js';
import { CONFIRMATION_KIND, DELETION_EMAIL_SENDS } from '../../mail/sends.js';
import { MailError } from '../../mail/transport.js';
import { OPERATOR_TEXTS, confirmationMail } from './messages.js';
import {
  candidateOf,
  decideDeletion,
  emailSha256,
  handlesGlobalWork,
  lockedUserOf,
  otherUserOf,
  type Candidate,
  type DeletionDecision,
  type LockedUser,
} from './plan.js';
import { runReminders } from './run-reminders.js';
import {
  claimMailSend,
  handOverOwnership,
  insertDeletionLog,
  lockCompany,
  readOtherUsers,
  readUser,
  recordMailSend,
  selectDueRequests,
  setLockTimeout,
  type CompanyRow,
} from './sql.js';
import {
  deleteCompanyRows,
  detachRetained,
  purgeExpiredInvoices,
  rowCount,
  tableName,
  userStatements,
  type UserStatement,
} from './sql-order.js';
import { countDeletion, newStats, type DeletionStats } from './stats.js';

/**
 * The sequence of account deletion (docs/account-deletions.md): sweep the claims of dead runs;
 * select the due requests; per account one transaction (company row lock → user row lock →
 * re-check and decide → set-based deletes → log row), its confirmation email after commit; the
 * purge of expired retained invoices; the J-7 reminders (run-reminders.ts).
 */

/** Retained invoices purged per run: bounded so a large backlog cannot exceed the budget. */
const PURGE_BATCH = 2_000;
/** Tries of one account's transaction when the database rolls it back for a deadlock or a serialization conflict. */
const ACCOUNT_TRIES = 3;

export type DeletionHooks = {
  /** After each table's statement of a deletion (tests inject a crash here). */
  afterStep?(table: string, userId: number): void | Promise<void>;
  /** After the account's rows are locked and re-checked, before deleting (tests: races). */
  afterLock?(userId: number): void | Promise<void>;
};

type Deleted = { deleted: Record<string, number>; nulled: Record<string, number>; retainedInvoices: number };

type AccountOutcome =
  | { done: false; reason: string }
  | (Deleted & {
      done: true;
      decision: Exclude<DeletionDecision, { kind: 'skip' }>;
      logId: number;
      user: LockedUser;
      company: CompanyRow | undefined;
    });

/**
 * The rows of one selected account re-read, and what to do with it. In the deleting transaction
 * (`lock`): the company row first, then the user row, always in this order (no deadlock between
 * deletions, and two deletions in one company are serialized, so "last active user" is decided
 * on fresh rows). The dry run reads the same rows without locks and takes the same decision.
 */
export async function readAndDecide(db: Executor, cand: Candidate, now: Date, lock: boolean) {
  const company = lock && cand.companyId !== null ? await lockCompany(db, cand.companyId) : undefined;
  if (lock && cand.companyId !== null && !company)
    return { decision: { kind: 'skip', reason: 'gone' } as const, locked: undefined, company };
  const locked = lockedUserOf(await readUser(db, cand.id, { lock }));
  const others = cand.companyId === null ? [] : (await readOtherUsers(db, cand.companyId, cand.id)).map(otherUserOf);
  return { decision: decideDeletion({ selectedCompanyId: cand.companyId, locked, others, now }), locked, company };
}

/** The deletes of one decided account, in DELETION_ORDER's order, with their row counts. */
async function deleteRows(
  tx: Tx,
  cand: Candidate,
  decision: Exclude<DeletionDecision, { kind: 'skip' }>,
  hooks: DeletionHooks,
): Promise<Deleted> {
  const out: Deleted = { deleted: {}, nulled: {}, retainedInvoices: 0 };
  const runUserStatements = async (statements: UserStatement[]) => {
    for (const st of statements) {
      const into = st.kind === 'deleted' ? out.deleted : out.nulled;
      into[st.table] = (into[st.table] ?? 0) + (await rowCount(tx, st.query));
      await hooks.afterStep?.(st.table, cand.id);
    }
  };
  if (decision.kind === 'user') {
    await runUserStatements(userStatements({ userId: cand.id }));
    if (decision.handOverTo !== null) await handOverOwnership(tx, decision.handOverTo);
    return out;
  }
  for (const step of DELETION_ORDER) {
    const name = tableName(step.table);
    // the company's users go now: first whatever still points at them from outside the company
    if (step.user.action === 'self') await runUserStatements(userStatements({ companyId: decision.companyId }));
    out.deleted[name] = (out.deleted[name] ?? 0) + (await deleteCompanyRows(tx, step, decision.companyId));
    if (step.retain) {
      const kept = await detachRetained(tx, step, decision.companyId);
      if (name === 'invoices') out.retainedInvoices = kept;
    }
    await hooks.afterStep?.(name, cand.id);
  }
  return out;
}

/** One account, one transaction: locks, re-check, deletes, log row. Nothing is visible until commit. */
function deleteAccount(ctx: JobContext, cand: Candidate, hooks: DeletionHooks): Promise<AccountOutcome> {
  return ctx.db.transaction(async (tx: Tx) => {
    await setLockTimeout(tx);
    const { decision, locked, company } = await readAndDecide(tx, cand, ctx.now, true);
    if (decision.kind === 'skip') return { done: false, reason: decision.reason };
    await hooks.afterLock?.(cand.id);
    const rows = await deleteRows(tx, cand, decision, hooks);
    const counts = {
      deleted: rows.deleted,
      ...(Object.keys(rows.nulled).length ? { nulled: rows.nulled } : {}),
      ...(decision.kind === 'company' ? { retainedInvoices: rows.retainedInvoices } : {}),
      ...(decision.kind === 'user' && decision.handOverTo !== null ? { ownerHandedOver: 1 } : {}),
    };
    const logId = await insertDeletionLog(tx, {
      userId: cand.id,
      companyId: cand.companyId,
      emailSha256: emailSha256(locked!.email),
      scope: decision.kind,
      counts,
    });
    return { done: true, decision, logId, user: locked!, company, ...rows };
  });
}

/** The confirmation through the send protocol: it is never retried (the address is gone with the account). */
async function sendConfirmation(
  ctx: JobContext,
  claimed: ClaimedSend,
  outcome: Extract<AccountOutcome, { done: true }>,
  stats: DeletionStats,
  errors: ItemError[],
) {
  const { logId, user } = outcome;
  const mail = confirmationMail({
    userId: user.id,
    logId,
    to: user.email,
    fullName: user.fullName,
    scope: outcome.decision.kind,
    companyName: outcome.company?.name ?? null,
    deletedAt: ctx.now,
    timezone: outcome.company?.tz ?? null,
    retainedInvoices: outcome.retainedInvoices,
    from: ctx.config.MAIL_FROM,
  });
  const id = await claimMailSend(ctx.db, `${CONFIRMATION_KIND}:${logId}`, CONFIRMATION_KIND, ctx.runId);
  if (id === null) return; // already claimed: never twice
  const sent = await claimed.send(id, ctx.mail.platform(), mail);
  if (sent.state === 'sent') {
    stats.confirmationsSent++;
    await recordMailSend(ctx.db, id, { sent: true, messageId: mail.messageId });
    return;
  }
  if (sent.state === 'lost') return;
  if (sent.state === 'unknown') stats.emailsUnknown++;
  else stats.emailFailures++;
  const e = 'error' in sent ? sent.error : new MailError('smtp_deadline', OPERATOR_TEXTS.confirmationDeadline, false);
  if (sent.state === 'retry' || sent.state === 'failed')
    await recordMailSend(ctx.db, id, { sent: false, error: `${e.code}: ${e.message}` });
  errors.push({ scope: 'confirmation', id: logId, code: e.code, message: e.message });
  ctx.log.warn({ logId, to: maskEmail(user.email), code: e.code }, 'confirmation email not sent; the deletion stands');
}

async function runDeletions(
  ctx: JobContext,
  stats: DeletionStats,
  errors: ItemError[],
  hooks: DeletionHooks,
  confirmations: ClaimedSend,
): Promise<boolean> {
  const { rows, total } = await selectDueRequests(ctx.db, { now: ctx.now, scope: ctx.scope, limit: ctx.config.DELETION_BATCH });
  const batch = rows.map(candidateOf);
  stats.due = total;
  let partial = false;
  for (const [done, cand] of batch.entries()) {
    if (budgetSpent(ctx)) {
      partial = true;
      break;
    }
    ctx.progress?.(`${done}/${batch.length} accounts`);
    let outcome: AccountOutcome;
    try {
      // a deadlock or serialization victim is run again at once; a lock wait that ran out is not (it already waited LOCK_TIMEOUT_MS)
      outcome = await withTransientRetry(() => deleteAccount(ctx, cand, hooks), { attempts: ACCOUNT_TRIES });
    } catch (err) {
      if (isLockConflict(err)) {
        stats.busy++;
        ctx.log.warn({ userId: cand.id, code: pgErrorCode(err) }, 'account busy; left for the next run');
      } else {
        const e = classifyJobError(err, { itemCode: 'deletion_failed' });
        stats.failures++;
        errors.push({ scope: 'account', id: cand.id, code: e.code, message: e.message });
        ctx.log.error({ userId: cand.id, err: e }, 'account deletion failed; rolled back');
      }
      continue;
    }
    if (!outcome.done) {
      if (outcome.reason === 'cancelled') stats.skippedCancelled++;
      ctx.log.info({ userId: cand.id, reason: outcome.reason }, 'account not deleted');
      continue;
    }
    const { decision } = outcome;
    countDeletion(stats, { ...outcome, kind: decision.kind, handedOver: decision.kind === 'user' && decision.handOverTo !== null });
    ctx.log.info({ userId: cand.id, companyId: cand.companyId, scope: decision.kind, logId: outcome.logId }, 'account deleted');
    // after commit: the deletion stands whatever the mail server says
    await sendConfirmation(ctx, confirmations, outcome, stats, errors);
  }
  stats.remaining = Math.max(0, total - stats.deletedUsers - stats.skippedCancelled);
  return partial;
}

async function runPurge(ctx: JobContext, stats: DeletionStats): Promise<void> {
  const res = await ctx.db.transaction((tx) => purgeExpiredInvoices(tx, ctx.now, PURGE_BATCH));
  stats.purgedInvoices += res.invoices;
  if (res.invoices > 0) ctx.log.info({ purged: res.invoices, rows: res.rows }, 'expired retained invoices purged');
}

/** The whole run (not the dry run: dry-run.ts). */
export async function runAccountDeletions(ctx: JobContext, hooks: DeletionHooks): Promise<JobResult> {
  const stats = newStats();
  const errors: ItemError[] = [];
  // claims of dead runs: never handed to SMTP → given back; handed over → `unknown`
  const swept = await sweepClaims(ctx.db, DELETION_EMAIL_SENDS);
  stats.releasedClaims = swept.released;
  stats.markedUnknown = swept.unknownIds.length;
  // the two protocol instances: a reminder refused for now is given back, a confirmation kept (`failed`)
  const base = {
    db: ctx.db,
    table: DELETION_EMAIL_SENDS,
    runId: ctx.runId,
    deadline: ctx.deadline,
    stopSignal: ctx.stopSignal,
    log: ctx.log,
  };
  let partial = await runDeletions(ctx, stats, errors, hooks, createClaimedSend({ ...base, policy: RECORDED_BY_SENDER }));
  if (!partial && handlesGlobalWork(ctx.scope)) {
    if (budgetSpent(ctx)) partial = true;
    else await runPurge(ctx, stats);
  }
  if (!partial) partial = await runReminders(ctx, stats, errors, createClaimedSend(base));
  return { stats: stats as unknown as Record<string, unknown>, errors, partial };
}
