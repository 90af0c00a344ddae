import { createHash } from 'node:crypto';
import type { Scope } from '../../cron/types.js';
import type { ClaimedReminderRow, DueRow, OtherUserRow, UserRow } from './sql.js';

/**
 * The pure half of account deletion (docs/account-deletions.md): rows and `now` in, decisions
 * out. No I/O. Also the mapping of sql.ts's raw rows to the facts the decisions take, and the
 * dry run's plan items.
 */

/** Days before `deletion_scheduled_at` when the one reminder email goes out (a last chance to cancel). */
const REMINDER_LEAD_DAYS = 7;
const DAY_MS = 86_400_000;

/** The request columns of a user row, as read (selection) or re-read under the row lock. */
export type DeletionRequest = {
  deletionRequestedAt: Date | null;
  deletionScheduledAt: Date | null;
};

/** A request is due when it is still active (not cancelled: both columns set) and its date has come. */
export function isDeletionDue(u: DeletionRequest, now: Date): boolean {
  return u.deletionRequestedAt !== null && u.deletionScheduledAt !== null && u.deletionScheduledAt.getTime() <= now.getTime();
}

/** The user row re-read inside the deleting transaction, under its row lock. */
export type LockedUser = DeletionRequest & {
  id: number;
  email: string;
  fullName: string | null;
  role: string;
  companyId: number | null;
  isActive: boolean;
};

/** The other users of the company, read in the same transaction after the company row lock. */
export type OtherUser = {
  id: number;
  role: string;
  isActive: boolean;
  createdAt: Date;
  deletionRequestedAt: Date | null;
};

export type SkipReason = 'gone' | 'cancelled' | 'moved';

export type DeletionDecision =
  | { kind: 'skip'; reason: SkipReason }
  /** the last active user of the company: the whole company goes */
  | { kind: 'company'; companyId: number }
  /** only this user; `handOverTo` becomes owner when the company would be left without one */
  | { kind: 'user'; companyId: number | null; handOverTo: number | null };

/**
 * What to do with one selected account, decided on the rows re-read under lock: a cancellation
 * (or any change) that committed before the lock was taken always wins.
 */
export function decideDeletion(input: {
  selectedCompanyId: number | null;
  locked: LockedUser | undefined;
  others: readonly OtherUser[];
  now: Date;
}): DeletionDecision {
  const { locked, others, now } = input;
  if (!locked) return { kind: 'skip', reason: 'gone' };
  if (!isDeletionDue(locked, now)) return { kind: 'skip', reason: 'cancelled' };
  // moved to another company since the selection: the lock we hold is on the wrong company
  if (locked.companyId !== input.selectedCompanyId) return { kind: 'skip', reason: 'moved' };
  if (locked.companyId === null) return { kind: 'user', companyId: null, handOverTo: null };
  const activeOthers = others.filter((o) => o.isActive && o.id !== locked.id);
  if (activeOthers.length === 0) return { kind: 'company', companyId: locked.companyId };
  return { kind: 'user', companyId: locked.companyId, handOverTo: newOwner(locked, activeOthers) };
}

/**
 * The owner leaves and no other active owner remains: the oldest remaining active user becomes
 * owner. Users who are themselves waiting for deletion come last, so ownership does not pass to
 * someone who is leaving too.
 */
export function newOwner(leaving: Pick<LockedUser, 'role'>, activeOthers: readonly OtherUser[]): number | null {
  if (leaving.role !== 'owner') return null;
  if (activeOthers.some((o) => o.role === 'owner')) return null;
  const candidates = activeOthers.filter((o) => o.role !== 'super_admin');
  if (candidates.length === 0) return null;
  const sorted = [...candidates].sort(
    (a, b) =>
      Number(a.deletionRequestedAt !== null) - Number(b.deletionRequestedAt !== null) ||
      a.createdAt.getTime() - b.createdAt.getTime() ||
      a.id - b.id,
  );
  return sorted[0].id;
}

/** The window of reminders due at `now`: deletions scheduled in (now, now + 7 days] (sql.ts reminderDueWhere). */
export function reminderWindow(now: Date): { after: Date; until: Date } {
  return { after: now, until: new Date(now.getTime() + REMINDER_LEAD_DAYS * DAY_MS) };
}

/** The deletion log's only trace of the person: sha256 of the trimmed, lowercased address. */
export function emailSha256(email: string): string {
  return createHash('sha256').update(email.trim().toLowerCase()).digest('hex');
}

/**
 * Company-less rows (super_admin users, retained invoices) belong to no tenant: only an unscoped
 * run, or shard 0, handles them, so that sharded runs neither miss nor share them.
 */
export function handlesGlobalWork(scope: Scope): boolean {
  return scope.companyId === undefined && (!scope.shard || scope.shard.k === 0);
}

// ---------------------------------------------------------------------------------------------
// Rows → facts

const asDate = (v: unknown): Date | null => (v === null || v === undefined ? null : v instanceof Date ? v : new Date(String(v)));
const asId = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** A selected account: who, and the company whose row the deletion locks first. */
export type Candidate = { id: number; companyId: number | null };

export const candidateOf = (r: DueRow): Candidate => ({ id: Number(r.id), companyId: asId(r.company_id) });

export function lockedUserOf(r: UserRow | undefined): LockedUser | undefined {
  return (
    r && {
      id: Number(r.id),
      email: String(r.email),
      fullName: r.full_name ?? null,
      role: String(r.role),
      companyId: asId(r.company_id),
      isActive: Boolean(r.is_active),
      deletionRequestedAt: asDate(r.deletion_requested_at),
      deletionScheduledAt: asDate(r.deletion_scheduled_at),
    }
  );
}

export const otherUserOf = (o: OtherUserRow): OtherUser => ({
  id: Number(o.id),
  role: String(o.role),
  isActive: Boolean(o.is_active),
  createdAt: asDate(o.created_at)!,
  deletionRequestedAt: asDate(o.deletion_requested_at),
});

/** A claimed reminder; `sendId` null when this request's email was claimed before (never twice). */
export type ClaimedReminder = {
  userId: number;
  email: string;
  fullName: string | null;
  scheduledAt: Date;
  timezone: string | null;
  sendId: number | null;
};

export const claimedReminderOf = (r: ClaimedReminderRow): ClaimedReminder => ({
  userId: Number(r.id),
  email: r.email,
  fullName: r.full_name,
  scheduledAt: asDate(r.deletion_scheduled_at)!,
  timezone: r.tz,
  sendId: asId(r.send_id),
});

// ---------------------------------------------------------------------------------------------
// Dry-run plan items

type Counts = Record<string, number>;

/** What the dry run lists for one account it would delete. */
export function planItem(
  cand: Candidate,
  decision: Exclude<DeletionDecision, { kind: 'skip' }>,
  counts: { deleted: Counts; retained?: Counts; nulled?: Counts },
) {
  return decision.kind === 'company'
    ? { action: 'delete-company', userId: cand.id, companyId: cand.companyId, rows: counts.deleted, retained: counts.retained ?? {} }
    : { action: 'delete-user', userId: cand.id, companyId: cand.companyId, rows: counts.deleted, nulled: counts.nulled ?? {} };
}
