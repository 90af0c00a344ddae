/** What /cron/status shows of bounces (docs/bounces.md): informative, never a health verdict. */
import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { countRecentBounces } from './sql.js';

export const STATUS_WINDOW_HOURS = 24;

export async function readBounceStatus(db: Db) {
  const last24h = await countRecentBounces(db, STATUS_WINDOW_HOURS);
  const [r] = await queryRows<{
    addresses: number;
    held: number;
    mailbox: { status: string; last_sync_at: string | null; last_error: string | null } | null;
  }>(
    db,
    sql`
    select (select count(distinct (company_id, recipient))::int from send_bounces where outcome = 'hard' and company_id is not null) as addresses,
           (select count(*)::int from followups where status = 'EN_ATTENTE' and hold_reason = 'bounced') as held,
           (select json_build_object('status', case when last_error is null then 'ok' else 'error' end, 'last_sync_at', last_sync_at, 'last_error', last_error)
              from bounce_mailbox_cursors order by updated_at desc limit 1) as mailbox`,
  );
  return { last24h, bouncedAddresses: r.addresses, followupsOnHold: r.held, ...(r.mailbox ? { platformMailbox: r.mailbox } : {}) };
}

/** The same, as a /cron/status attention source registered beside the jobs (lib/jobs/registry.ts). */
export async function readBounceAttention(db: Db): Promise<{ sections: { bounces: Awaited<ReturnType<typeof readBounceStatus>> } }> {
  return { sections: { bounces: await readBounceStatus(db) } };
}
