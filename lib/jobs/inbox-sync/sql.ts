/**
 * Every statement of inbox-sync except the storing of messages (store.ts): the due mailboxes,
 * the claim (the mailbox's lease), the known Message-IDs, and the status written with each
 * outcome (success, deadline, failure with back-off and notification, release).
 */
import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../../db/client.js';
import type { JobContext } from '../../cron/types.js';
import { scopeFilter } from '../../cron/scope.js';
import { rowLeaseFree } from '../../../db/liveness.js';
import { links } from '../../links.js';
import { parseCompanySettings } from '../../settings.js';
import { cursorAfter, type Cursor } from './cursor.js';
import { ImapSyncError } from '../../imap/errors.js';
import { nextThroughput } from '../../imap/sizing.js';
import { AUTH_FAILURES_BEFORE_PAUSE, nextSyncAfterFailure } from './threading.js';
import { frenchError, pausedNotification } from './messages.js';
import { PAUSED, mailboxDue } from './eligibility.js';
import type { LinkProgress, SessionResult } from './session.js';

/** Integrations looked at per run; the rest wait for the next run (oldest first). */
export const MAX_INTEGRATIONS_PER_RUN = 1_000;
/**
 * A claimed integration's lease outlives the run by this much: an upper bound for a holder that
 * has no ledger row; a ledgered holder frees it as soon as it stops beating (lib/cron/runs.ts).
 */
export const INTEGRATION_LEASE_EXTRA_SEC = 120;

export type IntegrationRow = {
  id: number;
  company_id: number;
  name: string;
  imap_server: string | null;
  imap_port: number | null;
  email_address: string | null;
  email_password: string | null;
  use_ssl: boolean;
  imap_folder: string;
  uid_validity: number | string | null;
  last_uid: number | string | null;
  highest_modseq: string | null;
  consecutive_failures: number;
  last_sync_at: Date | null;
  sync_bytes_per_sec: number | null;
  /** `password` or `oauth2` (docs/oauth-mailboxes.md). */
  auth_method: string;
};

export const toNum = (v: number | string | null) => (v === null ? null : Number(v));
/** Raw statements return timestamps as strings on some drivers: one shape for the rest of the code. */
export const asRow = (r: IntegrationRow): IntegrationRow => ({
  ...r,
  last_sync_at: r.last_sync_at === null ? null : new Date(r.last_sync_at as unknown as string),
});

export async function blockedDomainsOf(db: Db, companyId: number): Promise<string[]> {
  const rows = await queryRows<{ settings: unknown }>(db, sql`select settings from company_settings where company_id = ${companyId}`);
  return parseCompanySettings(rows[0]?.settings).settings.clients.blocked_client_domains;
}

/** The Message-IDs among `ids` already stored for the company (their bodies are not downloaded). */
export async function knownExternalIds(db: Db, companyId: number, ids: string[]): Promise<Set<string>> {
  if (!ids.length) return new Set();
  const rows = await queryRows<{ external_id: string }>(
    db,
    sql`
    select external_id from inbox_messages where company_id = ${companyId} and external_id = any(${sql.param(ids)}::text[])`,
  );
  return new Set(rows.map((r) => r.external_id));
}

/** The link columns written with every outcome: measured throughput and the last progress. */
const linkColumns = (row: IntegrationRow, link: LinkProgress) => sql`
  sync_bytes_per_sec = ${nextThroughput(row.sync_bytes_per_sec, link.bytes, link.ms)},
  last_progress_at = ${link.advanced ? sql`now()` : sql`last_progress_at`}`;

export async function recordSuccess(db: Db, row: IntegrationRow, s: SessionResult, now: Date, link: LinkProgress) {
  const prev: Cursor = {
    uidValidity: toNum(row.uid_validity),
    lastUid: toNum(row.last_uid),
    highestModseq: row.highest_modseq,
    lastSyncAt: row.last_sync_at,
  };
  // segments already stored their cursor steps; this adds the end-of-run position
  const stored = await queryRows<{ uid_validity: string | null; last_uid: string | null }>(
    db,
    sql`select uid_validity, last_uid from inbox_integrations where id = ${row.id}`,
  );
  const current: Cursor = { ...prev, uidValidity: toNum(stored[0]?.uid_validity ?? null), lastUid: toNum(stored[0]?.last_uid ?? null) };
  const next = cursorAfter(
    s.folder,
    s.planned,
    s.processed,
    current.uidValidity === s.folder.uidValidity ? current : { ...prev, uidValidity: null, lastUid: null },
  );
  const partial = s.stopped;
  // a finished run that moved the cursor (e.g. past expunged UIDs) advanced too; a cut one before its first message did not
  const moved = !partial && (next.lastUid ?? 0) > (current.lastUid ?? 0);
  await db.execute(sql`
    update inbox_integrations set
      uid_validity = ${next.uidValidity}, last_uid = ${next.lastUid}, highest_modseq = ${next.highestModseq},
      last_sync_status = ${partial ? 'partial' : 'success'}, last_sync_error = null, consecutive_failures = 0,
      last_sync_at = ${partial ? sql`last_sync_at` : sql`${now}`}, next_sync_at = null,
      ${linkColumns(row, { ...link, advanced: link.advanced || moved })},
      sync_lease_until = null, updated_at = now()
    where id = ${row.id}`);
}

/**
 * The run's deadline came before the folder was even planned (a slow connect, login or SEARCH):
 * not the mailbox's fault, so no failure is counted; `partial`, and the next run tries again.
 */
export async function recordDeadline(db: Db, row: IntegrationRow, link: LinkProgress) {
  await db.execute(sql`
    update inbox_integrations set last_sync_status = 'partial', ${linkColumns(row, link)}, sync_lease_until = null, updated_at = now()
    where id = ${row.id}`);
}

/** Failure: status, counters, back-off, release — one statement. Returns the new status. */
export async function recordFailure(
  ctx: JobContext,
  row: IntegrationRow,
  err: Error,
  link: LinkProgress,
): Promise<'error' | 'auth_error' | 'paused'> {
  const auth = err instanceof ImapSyncError && err.code === 'auth_failed';
  const failures = row.consecutive_failures + 1;
  const status = auth ? (failures >= AUTH_FAILURES_BEFORE_PAUSE ? PAUSED : 'auth_error') : 'error';
  const message = frenchError(err, row.imap_server ?? '?').slice(0, 500);
  await ctx.db.transaction(async (tx) => {
    await tx.execute(sql`
      update inbox_integrations set
        last_sync_status = ${status}, last_sync_error = ${message}, consecutive_failures = ${failures},
        next_sync_at = ${nextSyncAfterFailure(failures, ctx.now)}, ${linkColumns(row, link)}, sync_lease_until = null, updated_at = now()
      where id = ${row.id}`);
    if (status === PAUSED) {
      // one notification per pause episode: the episode is named by the last successful sync
      const episode = `auth-paused:${row.last_sync_at ? row.last_sync_at.toISOString() : 'never'}`;
      const n = pausedNotification({ name: row.name, email: row.email_address }, failures);
      await tx.execute(sql`
        insert into notifications (company_id, user_id, type, title, message, link_url, link_text, source_type, source_id, dedupe_key)
        values (${row.company_id}, null, 'INBOX_INTEGRATION_PAUSED', ${n.title}, ${n.message},
          ${links.mailboxSettings(ctx.config.FRONTEND_URL)}, ${n.linkText}, 'inbox_integration', ${row.id}, ${episode})
        on conflict do nothing`);
    }
  });
  return status;
}

export async function releaseLease(db: Db, id: number) {
  await db.execute(sql`update inbox_integrations set sync_lease_until = null where id = ${id}`);
}

/** Due (eligibility.ts) and not held by a live run. */
const CLAIMABLE = (now: Date) => sql`${mailboxDue(now)} and ${rowLeaseFree(sql`i.sync_lease_until`, sql`i.sync_lease_holder`)}`;

const COLUMNS = sql`i.id, i.company_id, i.name, i.imap_server, i.imap_port, i.email_address, i.email_password, i.use_ssl,
  i.imap_folder, i.uid_validity, i.last_uid, i.highest_modseq, i.consecutive_failures, i.last_sync_at, i.sync_bytes_per_sec, i.auth_method`;

/** Claims one integration for this run: the lease is the claim (docs/inbox-sync.md), re-checked atomically. */
export async function claimIntegration(ctx: JobContext, id: number, runStartedAt: Date): Promise<IntegrationRow | null> {
  const leaseSec = Math.max(60, Math.ceil((ctx.deadline - Date.now()) / 1000)) + INTEGRATION_LEASE_EXTRA_SEC;
  const rows = await queryRows<IntegrationRow>(
    ctx.db,
    sql`
    update inbox_integrations i set sync_lease_until = now() + make_interval(secs => ${leaseSec}), sync_lease_holder = ${ctx.runId}
    where i.id = ${id} and ${CLAIMABLE(ctx.now)}
      -- synced by an overlapping run since this one started: nothing to gain from a second pass
      and i.updated_at < ${runStartedAt}
    returning ${COLUMNS}`,
  );
  return rows[0] ? asRow(rows[0]) : null;
}

/** The database's clock, compared with updated_at (written by now()): no skew with the function's. */
export async function databaseNow(db: Db): Promise<Date> {
  const [{ ms }] = await queryRows<{ ms: string }>(db, sql`select (extract(epoch from now()) * 1000)::bigint::text as ms`);
  return new Date(Number(ms));
}

/** The mailboxes due now in the run's scope, the stalest first. */
export async function selectDueIntegrations(ctx: JobContext): Promise<IntegrationRow[]> {
  const rows = await queryRows<IntegrationRow>(
    ctx.db,
    sql`
    select ${COLUMNS} from inbox_integrations i
    where ${CLAIMABLE(ctx.now)} and ${scopeFilter(sql`i.company_id`, { companyId: ctx.scope.companyId })}
      -- shards split mailboxes, not companies: a big tenant spreads over every shard (docs/scale.md)
      and ${ctx.scope.shard ? sql`mod(i.id, ${ctx.scope.shard.n}) = ${ctx.scope.shard.k}` : sql`true`}
    -- the stalest mailbox first, whatever its company: nobody starves behind a big tenant
    order by i.last_sync_at nulls first, i.id
    limit ${MAX_INTEGRATIONS_PER_RUN}`,
  );
  return rows.map(asRow);
}
