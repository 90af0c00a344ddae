/** `/cron/status`: OAuth mailboxes waiting for their company to reconnect them (docs/oauth-mailboxes.md). */
import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { NEEDS_REAUTH } from './grant.js';

/** Listed at most; the count is exact. */
export const NEEDS_REAUTH_LISTED = 20;

export async function readNeedsReauth(db: Db) {
  const rows = await queryRows<{ id: number; company_id: number; oauth_provider: string | null; total: number }>(db, sql`
    select id, company_id, oauth_provider, count(*) over ()::int as total from inbox_integrations
    where is_active is not false and last_sync_status = ${NEEDS_REAUTH}
    order by id limit ${NEEDS_REAUTH_LISTED}`);
  return {
    needsReauth: rows[0]?.total ?? 0,
    integrations: rows.map((r) => ({ id: r.id, companyId: r.company_id, provider: r.oauth_provider })),
  };
}
