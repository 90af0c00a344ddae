/**
 * The send phase's statements of the follow-ups job (due rows, facts, quota, claims); the create
 * phase is in sql-create.ts, the records in sql-record.ts. Set-based: a fixed number of statements
 * per batch whatever its size. Lists travel as one jsonb parameter (the same on pg, Neon, PGlite).
 */
import { sql, type SQL } from 'drizzle-orm';
import { jsonb, preparedRows, queryRows, type Executor } from '../../../db/client.js';
import { scopeFilter } from '../../cron/scope.js';
import type { Scope } from '../../cron/types.js';
import type { AutoFollowupType } from './messages.js';
import type { Delivery } from './plan.js';
import { FOLLOWUP_SENDS } from '../../mail/sends.js';
import { invoicePaid } from '../../billing/sql.js';
import { AUTOMATIC_SENDER_NAME } from './messages.js';
import { clientsWithBouncedAddress, countRecentBounces, resumeBouncedFollowups } from '../../bounces/sql.js';

/** An instant as a timestamptz parameter. */
export const iso = (d: Date) => sql`${d.toISOString()}::timestamptz`;

/** The run's scope as a condition on a follow-up claim's own columns (the sweep's). */
export const claimScope = (scope: Scope): SQL => scopeFilter(sql`company_id`, scope);

/** Follow-ups held after a hard bounce whose client's address has changed since: due again (docs/bounces.md). */
export const resumeAfterBounce = (db: Executor, scope: Scope, now: Date) =>
  resumeBouncedFollowups(db, scopeFilter(sql`f.company_id`, scope), now);

/** Bounces of follow-up emails recorded over the last day, in the run's scope (for the stats). */
export const recentFollowupBounces = (db: Executor, scope: Scope) =>
  countRecentBounces(db, 24, sql`sb.send_kind = ${FOLLOWUP_SENDS.kind} and ${scopeFilter(sql`sb.company_id`, scope)}`);

/**
 * Follow-ups whose step ended `unknown` (swept, or no answer after DATA) go on hold
 * (EN_ATTENTE) for a human to decide; their step is never re-sent automatically.
 */
export async function holdUnknownSteps(db: Executor, historyIds: number[]) {
  if (!historyIds.length) return 0;
  const rows = await queryRows<{ n: number }>(
    db,
    sql`
    with held as (
      update followups f set status = 'EN_ATTENTE', updated_at = now()
      where f.id in (select h.followup_id from followup_history h where h.id in (select (jsonb_array_elements_text(${jsonb(historyIds)}))::int))
        and f.status = 'A_FAIRE'
      returning f.id
    )
    select count(*)::int as n from held`,
  );
  return rows[0]?.n ?? 0;
}

export type DueRow = {
  id: number;
  company_id: number;
  client_id: number;
  type: AutoFollowupType;
  source_type: string;
  source_id: number | null;
  source_label: string;
  due_date: Date | string;
  created_at: Date | string;
  /** `due_date` as PostgreSQL prints it (microseconds): the keyset cursor, compared at the column's precision. */
  due_key?: string;
};

/**
 * Where the previous batch ended. `dueKey` is the text of the column itself, never a JS Date:
 * a Date keeps milliseconds, `due_date` has microseconds, and a cursor rounded down re-reads the
 * same rows forever when many share one instant.
 */
export type Cursor = { dueKey: string; id: number } | null;

/**
 * The next due follow-ups after the cursor, in due order. With `lock` (inside the claim
 * transaction) rows another invocation holds are skipped, never waited for.
 */
export async function selectDue(db: Executor, scope: Scope, now: Date, cursor: Cursor, limit: number, lock: boolean) {
  return preparedRows<DueRow>(
    db,
    sql`
    select f.id, f.company_id, f.client_id, f.type, f.source_type, f.source_id, f.source_label, f.due_date, f.created_at,
           f.due_date::text as due_key
    from followups f
    where f.auto_enabled and f.status = 'A_FAIRE' and f.due_date <= ${iso(now)}
      and f.type in ('FACTURE_IMPAYEE', 'DEVIS_NON_REPONDU')
      and ${scopeFilter(sql`f.company_id`, scope)}
      ${cursor ? sql`and (f.due_date, f.id) > (${cursor.dueKey}::timestamptz, ${cursor.id})` : sql``}
    order by f.due_date, f.id
    limit ${limit}
    ${lock ? sql`for update of f skip locked` : sql``}`,
  );
}

export type LoadedIntegration = {
  id: number;
  email_address: string | null;
  email_password: string | null;
  /** `password` or `oauth2` (docs/oauth-mailboxes.md); an OAuth mailbox in `needs_reauth` cannot send. */
  auth_method?: string;
  oauth_provider?: string | null;
  last_sync_status?: string | null;
  smtp_server: string | null;
  smtp_port: number | null;
  smtp_use_ssl: boolean | null;
  use_ssl: boolean;
};
export type LoadedBatch = {
  companies: {
    id: number;
    name: string;
    is_active: boolean;
    settings: unknown;
    plan: string | null;
    integration: LoadedIntegration | null;
  }[];
  clients: { id: number; name: string; email: string | null }[];
  invoices: {
    id: number;
    number: string;
    invoice_type: string;
    status: string;
    total_cents: number;
    paid_cents: number;
    due_date: string | null;
    sent_at: string | null;
    deleted_at: string | null;
    archived_at: string | null;
  }[];
  quotes: {
    id: number;
    number: string;
    status: string;
    total_cents: number;
    sent_at: string | null;
    accepted_at: string | null;
    refused_at: string | null;
    valid_until: string | null;
    signed: boolean;
    public_token: string | null;
    deleted_at: string | null;
  }[];
  steps: {
    followup_id: number;
    step: number;
    delivery: Delivery;
    sent_at: string;
    attempts: number;
    next_attempt_at: string | null;
    message_id: string | null;
  }[];
  replies: { company_id: number; client_id: number; at: string }[];
  /** Clients whose current address hard-bounced (docs/bounces.md). */
  bounced: number[];
};

/**
 * Everything the batch's decisions need, fresh, in ONE statement: companies (settings, plan,
 * primary mailbox), clients, sources (invoice balance from its payments), automatic steps, the
 * latest inbound message of each client and the clients whose address bounced. In a claim
 * (`lockQuota`) the same statement row-locks the batch's STARTER companies until the claim
 * commits, so that two invocations cannot both count 19 sends and both send the 20th and 21st
 * (the count is the next statement).
 */
export async function loadBatch(db: Executor, due: DueRow[], opts: { lockQuota: boolean }): Promise<LoadedBatch> {
  const keys = due.map((d) => ({
    id: d.id,
    company_id: d.company_id,
    client_id: d.client_id,
    source_type: d.source_type,
    source_id: d.source_id,
  }));
  const rows = await preparedRows<LoadedBatch>(
    db,
    sql`
    with ids as (select * from jsonb_to_recordset(${jsonb(keys)}) as x(id int, company_id int, client_id int, source_type text, source_id int))
    ${
      opts.lockQuota
        ? sql`, quota_locked as (
      select c.id from companies c left join subscriptions s on s.company_id = c.id
      where c.id in (select company_id from ids) and coalesce(s.plan, 'STARTER') = 'STARTER'
      order by c.id for no key update of c)`
        : sql``
    }
    select
      ${opts.lockQuota ? sql`(select count(*) from quota_locked)::int as quota_locked,` : sql``}
      (select coalesce(json_agg(b.id), '[]'::json) from (${clientsWithBouncedAddress(sql`select client_id from ids`)}) b) as bounced,
      (select coalesce(json_agg(json_build_object(
          'id', c.id, 'name', c.name, 'is_active', c.is_active, 'settings', s.settings, 'plan', sub.plan,
          'integration', (select json_build_object('id', ii.id, 'email_address', ii.email_address, 'email_password', ii.email_password,
                                 'smtp_server', ii.smtp_server, 'smtp_port', ii.smtp_port, 'smtp_use_ssl', ii.smtp_use_ssl, 'use_ssl', ii.use_ssl,
                                 'auth_method', ii.auth_method, 'oauth_provider', ii.oauth_provider, 'last_sync_status', ii.last_sync_status)
                          from inbox_integrations ii
                          where ii.company_id = c.id and ii.is_primary and ii.is_active and ii.integration_type = 'imap'
                          order by (ii.smtp_server is not null) desc, ii.id limit 1))), '[]'::json)
        from companies c left join company_settings s on s.company_id = c.id left join subscriptions sub on sub.company_id = c.id
        where c.id in (select company_id from ids)) as companies,
      (select coalesce(json_agg(json_build_object('id', cl.id, 'name', cl.name, 'email', cl.email)), '[]'::json)
        from clients cl where cl.id in (select client_id from ids)) as clients,
      (select coalesce(json_agg(json_build_object(
          'id', i.id, 'number', i.number, 'invoice_type', i.invoice_type, 'status', i.status,
          'total_cents', round(i.total_ttc * 100)::bigint,
          'paid_cents', round(${invoicePaid('i')} * 100)::bigint,
          'due_date', i.due_date, 'sent_at', i.sent_at, 'deleted_at', i.deleted_at, 'archived_at', i.archived_at)), '[]'::json)
        from invoices i where (i.id, i.company_id) in (select source_id, company_id from ids where source_type = 'invoice')) as invoices,
      (select coalesce(json_agg(json_build_object(
          'id', q.id, 'number', q.number, 'status', q.status, 'total_cents', round(q.total_ttc * 100)::bigint,
          'sent_at', q.sent_at, 'accepted_at', q.accepted_at, 'refused_at', q.refused_at, 'valid_until', q.valid_until,
          'signed', q.client_signature_path is not null, 'public_token', q.public_token, 'deleted_at', q.deleted_at)), '[]'::json)
        from quotes q where (q.id, q.company_id) in (select source_id, company_id from ids where source_type = 'quote')) as quotes,
      (select coalesce(json_agg(json_build_object(
          'followup_id', h.followup_id, 'step', h.step, 'delivery', h.delivery, 'sent_at', h.sent_at,
          'attempts', h.attempts, 'next_attempt_at', h.next_attempt_at, 'message_id', h.message_id)), '[]'::json)
        from followup_history h where h.followup_id in (select id from ids) and h.step is not null and h.delivery is not null) as steps,
      (select coalesce(json_agg(json_build_object('company_id', r.company_id, 'client_id', r.client_id, 'at', r.at)), '[]'::json)
        from (select cv.company_id, cv.client_id, max(coalesce(m.sent_at, m.created_at)) as at
              from (select distinct company_id, client_id from ids) x
              join conversations cv on cv.company_id = x.company_id and cv.client_id = x.client_id
              join inbox_messages m on m.conversation_id = cv.id and m.is_from_client
                -- an out-of-office or a bounce is not an answer (docs/bounces.md)
                and m.kind = 'person'
              group by cv.company_id, cv.client_id) r) as replies`,
  );
  return rows[0];
}

/** History rows that count against the monthly quota: manual and automatic, not failed tries. */
export async function countSentThisPeriod(db: Executor, periods: { company_id: number; from: string; to: string }[]) {
  if (!periods.length) return new Map<number, number>();
  const rows = await preparedRows<{ company_id: number; n: number }>(
    db,
    sql`
    select p.company_id, count(h.id)::int as n
    from jsonb_to_recordset(${jsonb(periods)}) as p(company_id int, "from" timestamptz, "to" timestamptz)
    join followup_history h on h.company_id = p.company_id and h.sent_at >= p."from" and h.sent_at < p."to"
      and (h.delivery is null or h.delivery <> 'failed')
    group by p.company_id`,
  );
  return new Map(rows.map((r) => [r.company_id, r.n]));
}

export type ClaimRequest = { followup_id: number; company_id: number; step: number; message: string; message_id: string; retry: boolean };

/**
 * The claim itself, one statement: a new history row `sending` per (follow-up, step) — the unique
 * key IS the claim, ON CONFLICT means another invocation has it — or a failed step taken back
 * for a retry with a conditional update; plus the stops (→ FAIT). Returns what this run owns.
 */
export async function writeClaims(db: Executor, claims: ClaimRequest[], stops: number[], now: Date, maxAttempts: number, runId: string) {
  if (!claims.length && !stops.length) return [];
  return preparedRows<{ id: number; followup_id: number; step: number; attempts: number }>(
    db,
    sql`
    with sends as (select * from jsonb_to_recordset(${jsonb(claims)})
                   as s(followup_id int, company_id int, step int, message text, message_id text, retry bool)),
    new_claims as (
      insert into followup_history (followup_id, company_id, message, message_type, status, sent_by_name, sent_at,
                                    step, delivery, message_id, attempts, claimed_at, claimed_by)
      select followup_id, company_id, message, 'email', 'ENVOYE', ${AUTOMATIC_SENDER_NAME}, ${iso(now)},
             step, 'sending', message_id, 1, now(), ${runId}
      from sends where not retry
      on conflict (followup_id, step) do nothing
      returning id, followup_id, step, attempts
    ),
    retry_claims as (
      update followup_history h set delivery = 'sending', attempts = h.attempts + 1, claimed_at = now(), claimed_by = ${runId},
             handed_at = null, sent_at = ${iso(now)}, message = s.message, message_id = s.message_id, next_attempt_at = null
      from sends s
      where s.retry and h.followup_id = s.followup_id and h.step = s.step
        and (h.delivery = 'failed' and h.attempts < ${maxAttempts} or h.delivery = 'bounced')
      returning h.id, h.followup_id, h.step, h.attempts
    ),
    stopped as (
      update followups f set status = 'FAIT', updated_at = now()
      where f.id in (select (jsonb_array_elements_text(${jsonb(stops)}))::int) and f.status = 'A_FAIRE'
      returning f.id
    )
    select id, followup_id, step, attempts from new_claims
    union all select id, followup_id, step, attempts from retry_claims`,
  );
}

/** How many due follow-ups are left (a partial run's stats). */
export async function countDue(db: Executor, scope: Scope, now: Date) {
  const rows = await queryRows<{ n: number }>(
    db,
    sql`
    select count(*)::int as n from followups f
    where f.auto_enabled and f.status = 'A_FAIRE' and f.due_date <= ${iso(now)}
      and f.type in ('FACTURE_IMPAYEE', 'DEVIS_NON_REPONDU') and ${scopeFilter(sql`f.company_id`, scope)}`,
  );
  return rows[0]?.n ?? 0;
}
