/**
 * The SQL of the follow-ups job: set-based, a fixed number of statements per batch whatever its
 * size. Lists travel as one jsonb parameter (the same on pg, Neon and PGlite).
 */
import { sql, type SQL } from 'drizzle-orm';
import { queryRows, type Executor } from '../../../db/client.js';
import { scopeFilter } from '../../cron/scope.js';
import type { Scope } from '../../cron/types.js';
import type { AutoFollowupType } from './templates.js';
import type { Delivery } from './rules.js';
import type { ClaimTable } from '../../mail/claimed-send.js';

const json = (v: unknown) => sql`${JSON.stringify(v)}::jsonb`;
const iso = (d: Date) => sql`${d.toISOString()}::timestamptz`;

// ---------------------------------------------------------------------------------------------
// Create phase (SPEC §5.2.1)

export type CreationConfig = { company_id: number; quotes: boolean; invoices: boolean; first_delay: number; tz: string };

/** Companies of the run's scope whose billing switch is on; only that switch matters (defect 27). */
export async function loadCreationCompanies(db: Executor, scope: Scope) {
  return queryRows<{ company_id: number; settings: unknown }>(db, sql`
    select s.company_id, s.settings from company_settings s join companies c on c.id = s.company_id
    where c.is_active and ${scopeFilter(sql`s.company_id`, scope)}
      and ((s.settings #>> '{billing,auto_followups,invoices_enabled}') = 'true'
        or (s.settings #>> '{billing,auto_followups,quotes_enabled}') = 'true')`);
}

export type CandidateRow = {
  company_id: number; client_id: number; type: AutoFollowupType; source_type: 'invoice' | 'quote';
  source_id: number; source_label: string; due_date: Date | string; amount: string;
};

function candidatesCte(cfg: CreationConfig[], now: Date): SQL {
  // step 1 is due first_delay calendar days after the anchor, in the company's zone (defect 20)
  return sql`
    cfg as (select * from jsonb_to_recordset(${json(cfg)}) as c(company_id int, quotes bool, invoices bool, first_delay int, tz text)),
    candidates as (
      select i.company_id, i.client_id, 'FACTURE_IMPAYEE'::followuptype as type, 'invoice'::text as source_type, i.id as source_id,
             'Facture ' || i.number as source_label,
             ((coalesce(i.due_date, i.sent_at) at time zone c.tz) + make_interval(days => c.first_delay)) at time zone c.tz as due_date,
             i.total_ttc as amount
      from invoices i join cfg c on c.company_id = i.company_id and c.invoices
      where i.invoice_type = 'FACTURE' and i.status in ('ENVOYEE', 'IMPAYEE', 'EN_RETARD')
        and i.deleted_at is null and i.archived_at is null and i.client_id is not null
        and coalesce(i.due_date, i.sent_at) is not null
        and not exists (select 1 from followup_creations fc where fc.company_id = i.company_id and fc.source_type = 'invoice'
                        and fc.source_id = i.id and fc.type = 'FACTURE_IMPAYEE')
        and i.total_ttc - coalesce((select sum(p.amount) from invoice_payments p where p.invoice_id = i.id), 0) > 0
      union all
      select q.company_id, q.client_id, 'DEVIS_NON_REPONDU'::followuptype, 'quote'::text, q.id,
             'Devis ' || q.number,
             ((q.sent_at at time zone c.tz) + make_interval(days => c.first_delay)) at time zone c.tz,
             q.total_ttc
      from quotes q join cfg c on c.company_id = q.company_id and c.quotes
      where q.status in ('ENVOYE', 'VU') and q.client_signature_path is null and q.deleted_at is null
        and q.sent_at is not null and (q.valid_until is null or q.valid_until > ${iso(now)})
        and not exists (select 1 from followup_creations fc where fc.company_id = q.company_id and fc.source_type = 'quote'
                        and fc.source_id = q.id and fc.type = 'DEVIS_NON_REPONDU')
    )`;
}

/**
 * One statement: record the creation (the tombstone that stops a deleted follow-up from coming
 * back, defect 23), then insert the follow-up; both ON CONFLICT DO NOTHING.
 */
export async function createFollowups(db: Executor, cfg: CreationConfig[], now: Date) {
  if (!cfg.length) return [];
  return queryRows<{ type: AutoFollowupType; n: number }>(db, sql`
    with ${candidatesCte(cfg, now)},
    fresh as (
      insert into followup_creations (company_id, source_type, source_id, type, created_at)
      select company_id, source_type, source_id, type, ${iso(now)} from candidates
      on conflict do nothing
      returning company_id, source_type, source_id, type
    ),
    ins as (
      insert into followups (company_id, client_id, type, source_type, source_id, source_label, due_date, status, amount, auto_enabled, created_at, updated_at)
      select c.company_id, c.client_id, c.type, c.source_type, c.source_id, c.source_label, c.due_date, 'A_FAIRE', c.amount, true, ${iso(now)}, now()
      from candidates c join fresh f using (company_id, source_type, source_id, type)
      on conflict (company_id, source_type, source_id, type) do nothing
      returning type
    )
    select type, count(*)::int as n from ins group by type`);
}

/** Dry run: what the create phase would insert, written nowhere. */
export async function previewCreations(db: Executor, cfg: CreationConfig[], now: Date) {
  if (!cfg.length) return [];
  return queryRows<CandidateRow>(db, sql`
    with ${candidatesCte(cfg, now)}
    select c.* from candidates c
    where not exists (select 1 from followups f where f.company_id = c.company_id and f.source_type = c.source_type
                      and f.source_id = c.source_id and f.type = c.type)`);
}

// ---------------------------------------------------------------------------------------------
// Send phase (SPEC §5.2.2–5.2.6)

/**
 * The claims of follow-up steps for lib/mail/claimed-send.ts. Giving one back: a first try's row
 * is deleted (the step is due again), a retry's row returns to `failed` with its try count and
 * is due again at once (docs/sending.md).
 */
export const FOLLOWUP_CLAIMS: ClaimTable = {
  name: 'followup_history',
  release: (where) => [
    sql`delete from followup_history where (${where}) and attempts <= 1`,
    sql`update followup_history set delivery = 'failed', attempts = attempts - 1, next_attempt_at = claimed_at, claimed_by = null
        where (${where}) and attempts > 1`,
  ],
};

/**
 * Follow-ups whose step ended `unknown` (swept, or no answer after DATA) go on hold
 * (EN_ATTENTE) for a human to decide; their step is never re-sent automatically.
 */
export async function holdUnknownSteps(db: Executor, historyIds: number[]) {
  if (!historyIds.length) return 0;
  const rows = await queryRows<{ n: number }>(db, sql`
    with held as (
      update followups f set status = 'EN_ATTENTE', updated_at = now()
      where f.id in (select h.followup_id from followup_history h where h.id in (select (jsonb_array_elements_text(${json(historyIds)}))::int))
        and f.status = 'A_FAIRE'
      returning f.id
    )
    select count(*)::int as n from held`);
  return rows[0]?.n ?? 0;
}

export type DueRow = {
  id: number; company_id: number; client_id: number; type: AutoFollowupType; source_type: string;
  source_id: number | null; source_label: string; due_date: Date | string; created_at: Date | string;
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
  return queryRows<DueRow>(db, sql`
    select f.id, f.company_id, f.client_id, f.type, f.source_type, f.source_id, f.source_label, f.due_date, f.created_at,
           f.due_date::text as due_key
    from followups f
    where f.auto_enabled and f.status = 'A_FAIRE' and f.due_date <= ${iso(now)}
      and f.type in ('FACTURE_IMPAYEE', 'DEVIS_NON_REPONDU')
      and ${scopeFilter(sql`f.company_id`, scope)}
      ${cursor ? sql`and (f.due_date, f.id) > (${cursor.dueKey}::timestamptz, ${cursor.id})` : sql``}
    order by f.due_date, f.id
    limit ${limit}
    ${lock ? sql`for update of f skip locked` : sql``}`);
}

/**
 * STARTER companies of the batch, row-locked until the claim commits, so that two invocations
 * cannot both count 19 sends and both send the 20th and 21st.
 */
export async function lockQuotaCompanies(db: Executor, companyIds: number[]) {
  if (!companyIds.length) return;
  await db.execute(sql`
    select c.id from companies c left join subscriptions s on s.company_id = c.id
    where c.id in (select (jsonb_array_elements_text(${json(companyIds)}))::int)
      and coalesce(s.plan, 'STARTER') = 'STARTER'
    order by c.id for no key update of c`);
}

export type LoadedIntegration = {
  id: number; email_address: string | null; email_password: string | null;
  /** `password` or `oauth2` (docs/oauth-mailboxes.md); an OAuth mailbox in `needs_reauth` cannot send. */
  auth_method?: string; oauth_provider?: string | null; last_sync_status?: string | null;
  smtp_server: string | null; smtp_port: number | null; smtp_use_ssl: boolean | null; use_ssl: boolean;
};
export type LoadedBatch = {
  companies: { id: number; name: string; is_active: boolean; settings: unknown; plan: string | null; integration: LoadedIntegration | null }[];
  clients: { id: number; name: string; email: string | null }[];
  invoices: { id: number; number: string; invoice_type: string; status: string; total_cents: number; paid_cents: number;
    due_date: string | null; sent_at: string | null; deleted_at: string | null; archived_at: string | null }[];
  quotes: { id: number; number: string; status: string; total_cents: number; sent_at: string | null; accepted_at: string | null;
    refused_at: string | null; valid_until: string | null; signed: boolean; public_token: string | null; deleted_at: string | null }[];
  steps: { followup_id: number; step: number; delivery: Delivery; sent_at: string; attempts: number; next_attempt_at: string | null; message_id: string | null }[];
  replies: { company_id: number; client_id: number; at: string }[];
};

/**
 * Everything the batch's decisions need, fresh, in ONE statement: companies (settings, plan,
 * primary mailbox), clients, sources (invoice balance from its payments), automatic steps, and the
 * latest inbound message of each client.
 */
export async function loadBatch(db: Executor, due: DueRow[]): Promise<LoadedBatch> {
  const keys = due.map((d) => ({ id: d.id, company_id: d.company_id, client_id: d.client_id, source_type: d.source_type, source_id: d.source_id }));
  const rows = await queryRows<LoadedBatch>(db, sql`
    with ids as (select * from jsonb_to_recordset(${json(keys)}) as x(id int, company_id int, client_id int, source_type text, source_id int))
    select
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
          'paid_cents', round(coalesce((select sum(p.amount) from invoice_payments p where p.invoice_id = i.id), 0) * 100)::bigint,
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
              group by cv.company_id, cv.client_id) r) as replies`);
  return rows[0];
}

/** History rows that count against the monthly quota: manual and automatic, not failed tries. */
export async function countSentThisPeriod(db: Executor, periods: { company_id: number; from: string; to: string }[]) {
  if (!periods.length) return new Map<number, number>();
  const rows = await queryRows<{ company_id: number; n: number }>(db, sql`
    select p.company_id, count(h.id)::int as n
    from jsonb_to_recordset(${json(periods)}) as p(company_id int, "from" timestamptz, "to" timestamptz)
    join followup_history h on h.company_id = p.company_id and h.sent_at >= p."from" and h.sent_at < p."to"
      and (h.delivery is null or h.delivery <> 'failed')
    group by p.company_id`);
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
  return queryRows<{ id: number; followup_id: number; step: number; attempts: number }>(db, sql`
    with sends as (select * from jsonb_to_recordset(${json(claims)})
                   as s(followup_id int, company_id int, step int, message text, message_id text, retry bool)),
    new_claims as (
      insert into followup_history (followup_id, company_id, message, message_type, status, sent_by_name, sent_at,
                                    step, delivery, message_id, attempts, claimed_at, claimed_by)
      select followup_id, company_id, message, 'email', 'ENVOYE', 'Système automatique', ${iso(now)},
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
      where f.id in (select (jsonb_array_elements_text(${json(stops)}))::int) and f.status = 'A_FAIRE'
      returning f.id
    )
    select id, followup_id, step, attempts from new_claims
    union all select id, followup_id, step, attempts from retry_claims`);
}

export type SentRecord = {
  followupId: number; step: number; companyId: number; clientId: number;
  nextStatus: 'A_FAIRE' | 'FAIT'; nextDueDate: Date;
  subject: string; fromName: string; fromEmail: string; externalId: string; inReplyTo: string | null;
};

/**
 * After the SMTP server accepted, for a small batch of sends (one statement whatever its size):
 * history `sent` (over `sending`, or over `unknown`: a late success is the truth), the follow-up
 * moved to its next step (a FAIT set meanwhile by a user stays FAIT), and only now the outbound
 * message in the client's latest email conversation (created if none, once per client even when
 * the batch holds several of their follow-ups), so replies thread back into it (SPEC §5.2.5).
 * The message text is the one the claim stored in the history row (what was sent), not sent again.
 * Returns the (follow-up, step) pairs recorded; a pair whose row is `failed` or gone is skipped.
 */
export async function recordSentBatch(db: Executor, records: SentRecord[], now: Date) {
  if (!records.length) return [];
  // the same client's follow-ups sit next to each other: two statements that share clients tend
  // to take their conversation rows in the same order
  const sorted = [...records].sort((a, b) => a.companyId - b.companyId || a.clientId - b.clientId || a.followupId - b.followupId);
  for (let attempt = 1; ; attempt++) {
    try {
      return await recordSentStatement(db, sorted, now);
    } catch (err) {
      // two statements touching the same conversations (same clients, this run's next batch or
      // another invocation's) can deadlock; PostgreSQL rolls one back whole, so running it again
      // is safe: every step of it is conditional (`sending`/`unknown` rows, ON CONFLICT)
      if (attempt >= RECORD_DEADLOCK_TRIES || !isDeadlock(err)) throw err;
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * attempt));
    }
  }
}

/** Tries of one record statement rolled back by a deadlock (or serialization failure). */
export const RECORD_DEADLOCK_TRIES = 4;

/** 40P01 deadlock_detected / 40001 serialization_failure, possibly wrapped by the driver layer. */
export function isDeadlock(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code === '40P01' || e.code === '40001') return true;
  }
  return false;
}

async function recordSentStatement(db: Executor, records: SentRecord[], now: Date) {
  const rows = records.map((r) => ({
    followup_id: r.followupId, step: r.step, company_id: r.companyId, client_id: r.clientId,
    next_status: r.nextStatus, next_due: r.nextDueDate.toISOString(), subject: r.subject,
    from_name: r.fromName, from_email: r.fromEmail, external_id: r.externalId, in_reply_to: r.inReplyTo,
  }));
  return queryRows<{ followup_id: number; step: number }>(db, sql`
    with r as (
      select * from jsonb_to_recordset(${json(rows)}) as r(followup_id int, step int, company_id int, client_id int,
        next_status text, next_due timestamptz, subject text, from_name text, from_email text,
        external_id text, in_reply_to text)
    ),
    h0 as (
      select h.id, r.* from followup_history h join r on h.followup_id = r.followup_id and h.step = r.step
      where h.delivery in ('sending', 'unknown')
      order by h.id for update of h
    ),
    conv_existing as (
      select distinct on (c.company_id, c.client_id) c.company_id, c.client_id, c.id from conversations c
      join (select distinct company_id, client_id from h0) p on p.company_id = c.company_id and p.client_id = c.client_id
      where c.source = 'email' and c.status <> 'Spam'
      order by c.company_id, c.client_id, c.last_message_at desc nulls last, c.id desc
    ),
    conv_new as (
      -- the thread key makes creation race-free: a concurrent invocation that created the
      -- client's conversation first hands its row back through DO UPDATE … RETURNING
      insert into conversations (company_id, client_id, subject, status, source, unread_count, last_message_at, thread_key, created_at, updated_at)
      select distinct on (h0.company_id, h0.client_id) h0.company_id, h0.client_id, h0.subject, 'En attente', 'email', 0, ${iso(now)},
             'followups:client:' || h0.client_id, now(), now()
      from h0
      where not exists (select 1 from conv_existing e where e.company_id = h0.company_id and e.client_id = h0.client_id)
      order by h0.company_id, h0.client_id, h0.id
      on conflict (company_id, thread_key) where thread_key is not null
        do update set last_message_at = greatest(conversations.last_message_at, excluded.last_message_at), updated_at = now()
      returning company_id, client_id, id
    ),
    conv as (select company_id, client_id, id from conv_existing union all select company_id, client_id, id from conv_new),
    h as (
      update followup_history fh set delivery = 'sent', sent_at = ${iso(now)}, error = null, next_attempt_at = null, conversation_id = conv.id
      from h0 left join conv on conv.company_id = h0.company_id and conv.client_id = h0.client_id
      where fh.id = h0.id
      returning fh.id, fh.followup_id, fh.step, fh.conversation_id, fh.message
    ),
    f as (
      update followups fo set status = case when fo.status = 'FAIT' then fo.status else r.next_status::followupstatus end,
             due_date = r.next_due, actual_date = ${iso(now)}, updated_at = now()
      from h join r on r.followup_id = h.followup_id and r.step = h.step
      where fo.id = h.followup_id
      returning fo.id
    ),
    msg as (
      insert into inbox_messages (conversation_id, company_id, from_name, from_email, content, source, is_from_client, read,
                                  external_id, external_metadata, in_reply_to, sent_at, created_at)
      select h.conversation_id, r.company_id, r.from_name, r.from_email, h.message, 'email', false, true, r.external_id,
             jsonb_build_object('subject', r.subject, 'followup_id', r.followup_id, 'step', r.step, 'automatic', true),
             r.in_reply_to, ${iso(now)}, now()
      from h join r on r.followup_id = h.followup_id and r.step = h.step
      where h.conversation_id is not null
      on conflict (company_id, external_id) where external_id is not null do nothing
      returning id
    ),
    touched as (
      update conversations c set last_message_at = greatest(coalesce(c.last_message_at, ${iso(now)}), ${iso(now)}), updated_at = now()
      where c.id in (select e.id from conv_existing e) and exists (select 1 from h)
      returning c.id
    )
    select followup_id, step from h`);
}

export type FailedRecord = {
  followupId: number; step: number; companyId: number; error: string; nextAttemptAt: Date | null; final: boolean;
  notification: { title: string; message: string; linkUrl: string; linkText: string } | null;
};

/**
 * The SMTP server said no: history `failed` with the error and the back-off; the follow-up's
 * due date follows the retry. After the last try the follow-up goes on hold and the company gets
 * one FOLLOWUP_FAILED notification (dedupe key per follow-up and step). One statement.
 */
export async function recordFailed(db: Executor, r: FailedRecord) {
  const n = r.notification;
  const rows = await queryRows<{ id: number }>(db, sql`
    with h as (
      update followup_history set delivery = 'failed', error = ${r.error.slice(0, 500)},
             next_attempt_at = ${r.nextAttemptAt ? iso(r.nextAttemptAt) : sql`null`}
      where followup_id = ${r.followupId} and step = ${r.step} and delivery = 'sending'
      returning id
    ),
    f as (
      update followups set
        due_date = ${r.nextAttemptAt ? iso(r.nextAttemptAt) : sql`due_date`},
        status = ${r.final ? sql`case when status = 'A_FAIRE' then 'EN_ATTENTE'::followupstatus else status end` : sql`status`},
        updated_at = now()
      where id = ${r.followupId} and exists (select 1 from h)
      returning id
    ),
    n as (
      insert into notifications (company_id, user_id, type, title, message, link_url, link_text, source_type, source_id, dedupe_key)
      select ${r.companyId}, null, 'FOLLOWUP_FAILED', ${n?.title ?? ''}, ${n?.message ?? ''}, ${n?.linkUrl ?? null}, ${n?.linkText ?? null},
             'followup', ${r.followupId}, ${`step:${r.step}`}
      where ${r.final && n ? sql`true` : sql`false`} and exists (select 1 from h)
      on conflict do nothing
      returning id
    )
    select id from h`);
  return rows.length > 0;
}

/** How many due follow-ups are left (a partial run's stats). */
export async function countDue(db: Executor, scope: Scope, now: Date) {
  const rows = await queryRows<{ n: number }>(db, sql`
    select count(*)::int as n from followups f
    where f.auto_enabled and f.status = 'A_FAIRE' and f.due_date <= ${iso(now)}
      and f.type in ('FACTURE_IMPAYEE', 'DEVIS_NON_REPONDU') and ${scopeFilter(sql`f.company_id`, scope)}`);
  return rows[0]?.n ?? 0;
}
