import { companyZoneSetting } from '../../time/zone.js';
import { sql, type SQL } from 'drizzle-orm';
import { queryRows, type Executor } from '../../../db/client.js';
import { accountDeletionLog, companies, users } from '../../../db/schema/index.js';
import { scopeFilter } from '../../cron/scope.js';
import type { Scope } from '../../cron/types.js';
import { handlesGlobalWork, reminderWindow } from './plan.js';
import { intArray, rowCount } from './sql-order.js';
import { REMINDER_KIND } from '../../mail/sends.js';

/**
 * The statements of account deletion other than the per-table ones (sql-order.ts): the
 * selection, the locks and re-reads of the deleting transaction, its log row, the J-7 reminders
 * and the claims of the two emails. They answer raw rows; plan.ts turns them into facts.
 */

/**
 * A lock held longer than this belongs to a stuck transaction (or another deletion of the same
 * company): the account is left for the next run rather than eating the whole budget.
 */
export const LOCK_TIMEOUT_MS = 5_000;

/** Users of the run's tenants; company-less users (super_admin) only for an unscoped run or shard 0. */
function userScopeFilter(scope: Scope): SQL {
  const tenants = scopeFilter(users.companyId, scope);
  return handlesGlobalWork(scope) ? sql`(${users.companyId} is null or (${tenants}))` : tenants;
}

// ---------------------------------------------------------------------------------------------
// Selection and the deleting transaction

export type DueRow = { id: number; company_id: number | null };

/** Due requests in the run's tenants, oldest first (at most `limit`), and how many are due in all. */
export async function selectDueRequests(
  db: Executor,
  p: { now: Date; scope: Scope; limit: number },
): Promise<{ rows: DueRow[]; total: number }> {
  const where = sql`${users.deletionRequestedAt} is not null and ${users.deletionScheduledAt} <= ${p.now} and ${userScopeFilter(p.scope)}`;
  const rows = await queryRows<DueRow>(
    db,
    sql`
    select ${users.id} as id, ${users.companyId} as company_id from ${users} where ${where}
    order by ${users.deletionScheduledAt}, ${users.id} limit ${p.limit}`,
  );
  const total = await rowCount(db, sql`select count(*)::int as n from ${users} where ${where}`);
  return { rows, total };
}

/** For the current transaction only (`set_config(…, true)`): see LOCK_TIMEOUT_MS. */
export async function setLockTimeout(tx: Executor): Promise<void> {
  await tx.execute(sql`select set_config('lock_timeout', ${`${LOCK_TIMEOUT_MS}ms`}, true)`);
}

export type CompanyRow = { name: string; tz: string | null };

/** Locks the company row (FOR UPDATE) and reads its name and zone setting; undefined when it is gone. */
export async function lockCompany(tx: Executor, companyId: number): Promise<CompanyRow | undefined> {
  const rows = await queryRows<CompanyRow>(
    tx,
    sql`
    select ${companies.name} as name,
      ${companyZoneSetting(sql`${companies.id}`)} as tz
    from ${companies} where ${companies.id} = ${companyId} for update of ${companies}`,
  );
  return rows[0];
}

export type UserRow = {
  id: number;
  email: string;
  full_name: string | null;
  role: string;
  company_id: number | null;
  is_active: boolean;
  deletion_requested_at: unknown;
  deletion_scheduled_at: unknown;
};

/** The user row, locked (FOR UPDATE) in the deleting transaction, plainly read by the dry run. */
export async function readUser(tx: Executor, userId: number, opts: { lock: boolean }): Promise<UserRow | undefined> {
  const rows = await queryRows<UserRow>(
    tx,
    sql`
    select id, email, full_name, role, company_id, is_active, deletion_requested_at, deletion_scheduled_at
    from ${users} where ${users.id} = ${userId} ${opts.lock ? sql`for update` : sql``}`,
  );
  return rows[0];
}

export type OtherUserRow = { id: number; role: string; is_active: boolean; created_at: unknown; deletion_requested_at: unknown };

/** The company's other users (read after the company row lock, so "last active user" is decided on fresh rows). */
export function readOtherUsers(tx: Executor, companyId: number, userId: number): Promise<OtherUserRow[]> {
  return queryRows<OtherUserRow>(
    tx,
    sql`
    select id, role, is_active, created_at, deletion_requested_at from ${users}
    where ${users.companyId} = ${companyId} and ${users.id} <> ${userId}`,
  );
}

export async function handOverOwnership(tx: Executor, userId: number): Promise<void> {
  await tx.execute(sql`update ${users} set role = 'owner' where ${users.id} = ${userId}`);
}

/** The deletion's log row, in the deleting transaction: ids, the address's sha256, counts. */
export async function insertDeletionLog(
  tx: Executor,
  entry: {
    userId: number;
    companyId: number | null;
    emailSha256: string;
    scope: 'user' | 'company';
    counts: Record<string, unknown>;
  },
): Promise<number> {
  const [row] = await queryRows<{ id: number }>(
    tx,
    sql`
    insert into ${accountDeletionLog} (user_id, company_id, email_sha256, scope, counts)
    values (${entry.userId}, ${entry.companyId}, ${entry.emailSha256}, ${entry.scope}, ${JSON.stringify(entry.counts)}::jsonb)
    returning id`,
  );
  return Number(row.id);
}

// ---------------------------------------------------------------------------------------------
// The J-7 reminders

/**
 * The one rule of "a reminder is due": the deletion is inside the window of plan.ts's
 * reminderWindow, and no reminder went out *for this request* (a reminder sent for an earlier
 * request, cancelled then asked again, does not count: the app that clears the two request
 * columns on cancellation does not know about `deletion_reminder_sent_at`).
 */
export function reminderDueWhere(now: Date, scope: Scope): SQL {
  const { after, until } = reminderWindow(now);
  return sql`${users.deletionRequestedAt} is not null
    and ${users.deletionScheduledAt} > ${after} and ${users.deletionScheduledAt} <= ${until}
    and (${users.deletionReminderSentAt} is null or ${users.deletionReminderSentAt} < ${users.deletionRequestedAt})
    and ${userScopeFilter(scope)}`;
}

/** Dry run: how many reminders are due. */
export const countDueReminders = (db: Executor, now: Date, scope: Scope) =>
  rowCount(db, sql`select count(*)::int as n from ${users} where ${reminderDueWhere(now, scope)}`);

export type ClaimedReminderRow = {
  id: number;
  email: string;
  full_name: string | null;
  deletion_scheduled_at: unknown;
  tz: string | null;
  send_id: number | null;
};

/**
 * Claims due reminders (one UPDATE … RETURNING, SKIP LOCKED), so two runs never send the same
 * one, and each one's `mail_sends` claim in the same statement. `send_id` null: this request's
 * email was claimed before (never twice).
 */
export function claimDueReminders(
  db: Executor,
  p: { now: Date; scope: Scope; runId: string; limit: number; exclude: readonly number[] },
): Promise<ClaimedReminderRow[]> {
  return queryRows<ClaimedReminderRow>(
    db,
    sql`
    with claimed as (
      update ${users} set deletion_reminder_sent_at = ${p.now}
      where ${users.id} in (
        select ${users.id} from ${users}
        where ${reminderDueWhere(p.now, p.scope)} and ${users.id} <> all(${intArray(p.exclude)}::int[])
        order by ${users.deletionScheduledAt}, ${users.id}
        limit ${p.limit}
        for update skip locked)
      returning id, email, full_name, company_id, deletion_scheduled_at, deletion_requested_at),
    -- the email's own claim: one per (user, request), whatever happens to the user row
    sends as (
      insert into mail_sends (key, kind, claimed_at, claimed_by, delivery)
      select ${REMINDER_KIND} || ':' || c.id || ':' || floor(extract(epoch from c.deletion_requested_at) * 1000)::bigint,
             ${REMINDER_KIND}, now(), ${p.runId}, 'sending'
      from claimed c
      on conflict (key) do nothing
      returning id, split_part(key, ':', 2)::int as user_id)
    select c.id, c.email, c.full_name, c.deletion_scheduled_at,
      ${companyZoneSetting(sql`c.company_id`)} as tz,
      (select m.id from sends m where m.user_id = c.id) as send_id
    from claimed c`,
  );
}

// ---------------------------------------------------------------------------------------------
// The two emails' claims (`mail_sends`, lib/mail/claimed-send.ts, docs/sending.md)

/** A claim in `mail_sends` under `key`; null when the key is already claimed (by this or another run). */
export async function claimMailSend(db: Executor, key: string, kind: string, runId: string): Promise<number | null> {
  const rows = await queryRows<{ id: number }>(
    db,
    sql`
    insert into mail_sends (key, kind, claimed_at, claimed_by, delivery) values (${key}, ${kind}, now(), ${runId}, 'sending')
    on conflict (key) do nothing returning id`,
  );
  return rows[0] ? Number(rows[0].id) : null;
}

/** The answer of a claimed deletion email: `sent` (also over `unknown`: a late success is the truth) or `failed`. */
export async function recordMailSend(
  db: Executor,
  id: number,
  outcome: { sent: true; messageId: string } | { sent: false; error: string },
) {
  await db.execute(
    outcome.sent
      ? sql`update mail_sends set delivery = 'sent', sent_at = now(), message_id = ${outcome.messageId}, error = null
          where id = ${id} and delivery in ('sending', 'unknown')`
      : sql`update mail_sends set delivery = 'failed', error = ${outcome.error.slice(0, 500)} where id = ${id} and delivery = 'sending'`,
  );
}
