import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../../db/client.js';
import type { JobAttention } from '../../cron/types.js';
import { NEEDS_REAUTH } from '../../oauth/grant.js';
import { PAUSED, mailboxEligible, mailboxInService } from './eligibility.js';
import { readInboxFreshness } from './sweep.js';

/** Mailboxes in error listed one by one in /cron/status (the count is exact). */
export const MAX_LISTED_ERRORED = 20;
/** OAuth mailboxes to reconnect listed one by one (the count is exact). */
export const NEEDS_REAUTH_LISTED = 20;
/** A mailbox not caught up that moved its cursor within this many inbox-sync intervals is advancing. */
export const ADVANCING_INTERVALS = 3;
/** Mailboxes listed one by one (the others are only counted). */
export const MAX_LISTED_MAILBOXES = 50;

export type InboxSyncSections = {
  inbox: { integrationsInError: number; integrations: ErroredMailbox[]; progress: Awaited<ReturnType<typeof readInboxProgress>> };
  /** OAuth mailboxes whose grant is gone: only the company can fix them (reconnect in the web app). */
  oauthMailboxes: {
    needsReauth: number;
    integrations: { id: number; companyId: number; provider: string | null; reason: string | null }[];
  };
  /** The stalest eligible mailbox's age against three intervals: stale mailboxes make the status 503. */
  inboxFreshness: Awaited<ReturnType<typeof readInboxFreshness>>;
};
/** `reason`: the French `last_sync_error` the company sees (why it failed, or what it must do). */
type ErroredMailbox = {
  id: number;
  company_id: number;
  last_sync_status: string;
  last_sync_at: Date | null;
  consecutive_failures: number;
  reason: string | null;
};

/**
 * /cron/status: mailboxes in service in error or paused, their progress, OAuth mailboxes to
 * reconnect, and the inbox freshness (docs/inbox-sync.md), given the job's schedule interval. Only
 * a stale eligible mailbox makes the status unhealthy: a mailbox waiting for its company is
 * attention, not a stale inbox.
 */
export async function readInboxSyncAttention(db: Db, now: Date, intervalMs: number): Promise<JobAttention<InboxSyncSections>> {
  const integrations = await queryRows<ErroredMailbox & { total: number }>(
    db,
    sql`
    select id, company_id, last_sync_status, last_sync_at, consecutive_failures, last_sync_error as reason, count(*) over ()::int as total
    from inbox_integrations i
    where ${mailboxInService()} and last_sync_status in ('error', 'auth_error', ${PAUSED})
    order by id limit ${MAX_LISTED_ERRORED}`,
  );
  const reauth = await queryRows<{ id: number; company_id: number; oauth_provider: string | null; reason: string | null; total: number }>(
    db,
    sql`
    select id, company_id, oauth_provider, last_sync_error as reason, count(*) over ()::int as total
    from inbox_integrations i
    where ${mailboxInService()} and last_sync_status = ${NEEDS_REAUTH}
    order by id limit ${NEEDS_REAUTH_LISTED}`,
  );
  const progress = await readInboxProgress(db, now, intervalMs);
  const inboxFreshness = await readInboxFreshness(db, now, intervalMs);
  return {
    healthy: inboxFreshness.healthy,
    sections: {
      inbox: { integrationsInError: integrations[0]?.total ?? 0, integrations: integrations.map(({ total: _, ...m }) => m), progress },
      oauthMailboxes: {
        needsReauth: reauth[0]?.total ?? 0,
        integrations: reauth.map((r) => ({ id: r.id, companyId: r.company_id, provider: r.oauth_provider, reason: r.reason })),
      },
      inboxFreshness,
    },
  };
}

export type MailboxProgressRow = {
  id: number;
  company_id: number;
  last_sync_status: string | null;
  last_sync_at: Date | string | null;
  last_progress_at: Date | string | null;
  sync_bytes_per_sec: number | null;
};

/**
 * Pure: `caught-up` (the last run finished the folder), `advancing` (behind, but its cursor moved
 * recently: a slow link that commits a little every run), `stalled` (behind, and no progress for
 * ADVANCING_INTERVALS intervals: stuck behind a link or an error), `never` (never synced).
 */
export function mailboxProgress(
  row: Pick<MailboxProgressRow, 'last_sync_status' | 'last_progress_at'>,
  intervalMs: number,
  now: Date,
): 'caught-up' | 'advancing' | 'stalled' | 'never' {
  if (row.last_sync_status === 'success') return 'caught-up';
  if (row.last_sync_status === null && row.last_progress_at === null) return 'never';
  const at = row.last_progress_at === null ? null : new Date(row.last_progress_at);
  return at && now.getTime() - at.getTime() <= ADVANCING_INTERVALS * intervalMs ? 'advancing' : 'stalled';
}

/** Per eligible mailbox that is not caught up: its progress, last progress and measured bytes per second. */
export async function readInboxProgress(db: Db, now: Date, intervalMs: number) {
  const rows = await queryRows<MailboxProgressRow & { total: number }>(
    db,
    sql`
    select id, company_id, last_sync_status, last_sync_at, last_progress_at, sync_bytes_per_sec, count(*) over ()::int as total
    from inbox_integrations i
    where ${mailboxEligible()} and last_sync_status is distinct from 'success'
    order by last_progress_at nulls first, id
    limit ${MAX_LISTED_MAILBOXES}`,
  );
  const counts = await queryRows<{ caught_up: number; behind: number }>(
    db,
    sql`
    select count(*) filter (where last_sync_status = 'success')::int as caught_up,
           count(*) filter (where last_sync_status is distinct from 'success')::int as behind
    from inbox_integrations i where ${mailboxEligible()}`,
  );
  const iso = (v: Date | string | null) => (v === null ? null : new Date(v).toISOString());
  const mailboxes = rows.map((r) => ({
    id: r.id,
    companyId: r.company_id,
    status: r.last_sync_status,
    progress: mailboxProgress(r, intervalMs, now),
    lastProgressAt: iso(r.last_progress_at),
    lastSyncAt: iso(r.last_sync_at),
    bytesPerSec: r.sync_bytes_per_sec,
  }));
  return {
    caughtUp: counts[0]?.caught_up ?? 0,
    behind: counts[0]?.behind ?? 0,
    stalledListed: mailboxes.filter((m) => m.progress === 'stalled').length,
    mailboxes,
  };
}
