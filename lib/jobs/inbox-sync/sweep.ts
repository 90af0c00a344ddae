/**
 * What a fan-out coordinator and `/cron/status` need to know about inbox-sync's backlog
 * (docs/scale.md): mailboxes due now, and the age of the oldest one not synced yet.
 */
import { sql } from 'drizzle-orm';
import { queryRows, type Executor } from '../../../db/client.js';
import { mailboxDue, mailboxEligible } from './eligibility.js';

/** The run's own selection (eligibility.ts) without the per-mailbox lease: a mailbox held by a running shard is still due work of this sweep. */
export async function countDueMailboxes(db: Executor, now: Date): Promise<number> {
  const rows = await queryRows<{ n: number }>(
    db,
    sql`
    select count(*)::int as n from inbox_integrations i where ${mailboxDue(now)}`,
  );
  return rows[0]?.n ?? 0;
}

/**
 * Inbox freshness: the last successful sync of the stalest eligible mailbox (its creation when it
 * never synced). Mailboxes waiting for their company (paused, needs_reauth) are not stale: they
 * are attention, reported apart with their reason (attention.ts).
 */
export async function oldestSyncedAt(db: Executor): Promise<{ at: Date | null; mailboxes: number }> {
  const rows = await queryRows<{ at: string | Date | null; n: number }>(
    db,
    sql`
    -- last_sync_at is the job's clock (a local rehearsal with now= moves it); after a success,
    -- updated_at is the database's clock of that success
    select min(case when i.last_sync_status = 'success' then greatest(i.last_sync_at, i.updated_at)
                    else coalesce(i.last_sync_at, i.created_at) end) as at, count(*)::int as n
    from inbox_integrations i
    where ${mailboxEligible()}`,
  );
  const r = rows[0];
  return { at: r?.at ? new Date(r.at) : null, mailboxes: r?.n ?? 0 };
}

/** Pure: inbox freshness from the oldest sync time; unhealthy past three schedule intervals. */
export function judgeFreshness(oldest: Date | null, intervalMs: number, now: Date) {
  const ageSec = oldest ? Math.max(0, Math.round((now.getTime() - oldest.getTime()) / 1000)) : null;
  const limitSec = Math.round((3 * intervalMs) / 1000);
  return { oldestSyncedAt: oldest?.toISOString() ?? null, ageSec, limitSec, healthy: ageSec === null || ageSec <= limitSec };
}

/** `/cron/status`'s inbox freshness: the mailboxes counted, and the stalest one's age against its limit. */
export async function readInboxFreshness(db: Executor, now: Date, intervalMs: number) {
  const oldest = await oldestSyncedAt(db);
  return { mailboxes: oldest.mailboxes, ...judgeFreshness(oldest.at, intervalMs, now) };
}
