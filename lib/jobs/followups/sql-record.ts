/**
 * The record phase's statements: an accepted send (with the next step, the conversation and the
 * outbound message, in the statement that hands over the next emails of the send window), a
 * refused one (back-off, notification after the last try). docs/followups.md, "Send and record".
 */
import { sql, type SQL } from 'drizzle-orm';
import { jsonb, preparedRows, queryRows, withTransientRetry, type Executor } from '../../../db/client.js';
import { iso } from './sql.js';

export type SentRecord = {
  followupId: number;
  step: number;
  companyId: number;
  clientId: number;
  nextStatus: 'A_FAIRE' | 'FAIT';
  nextDueDate: Date;
  subject: string;
  fromName: string;
  fromEmail: string;
  externalId: string;
  inReplyTo: string | null;
};

/**
 * After the SMTP server accepted, for a small batch of sends (one statement whatever its size):
 * history `sent` (over `sending`, or over `unknown`: a late success is the truth), the follow-up
 * moved to its next step (a FAIT set meanwhile by a user stays FAIT), and only now the outbound
 * message in the client's latest email conversation (created if none, once per client even when
 * the batch holds several of their follow-ups), so replies thread back into it (docs/followups.md, "Message and transport").
 * The message text is the one the claim stored in the history row (what was sent), not sent again.
 * Returns the (follow-up, step) pairs recorded; a pair whose row is `failed` or gone is skipped.
 */
export async function recordSentBatch(db: Executor, records: SentRecord[], now: Date, handOver: SQL | null = null) {
  if (!records.length) return { recorded: [], handedIds: [] };
  // the same client's follow-ups sit next to each other: two statements that share clients tend
  // to take their conversation rows in the same order
  const sorted = [...records].sort((a, b) => a.companyId - b.companyId || a.clientId - b.clientId || a.followupId - b.followupId);
  // two statements touching the same conversations (same clients, this run's next batch or
  // another invocation's) can deadlock; PostgreSQL rolls one back whole, so running it again is
  // safe: every step of it is conditional (`sending`/`unknown` rows, ON CONFLICT)
  return withTransientRetry(() => recordSentStatement(db, sorted, now, handOver), { attempts: RECORD_DEADLOCK_TRIES });
}

/** Tries of one record statement rolled back by a deadlock (or serialization failure). */
const RECORD_DEADLOCK_TRIES = 4;

/**
 * One statement: the records of accepted sends and, in the same transaction, the hand-over of the
 * next emails of the send window (lib/mail/send-window.ts); the hand-over touches other rows.
 */
async function recordSentStatement(db: Executor, records: SentRecord[], now: Date, handOver: SQL | null) {
  const rows = records.map((r) => ({
    followup_id: r.followupId,
    step: r.step,
    company_id: r.companyId,
    client_id: r.clientId,
    next_status: r.nextStatus,
    next_due: r.nextDueDate.toISOString(),
    subject: r.subject,
    from_name: r.fromName,
    from_email: r.fromEmail,
    external_id: r.externalId,
    in_reply_to: r.inReplyTo,
  }));
  const out = await preparedRows<{ followup_id: number | null; step: number | null; handed_id: number | null }>(
    db,
    sql`
    with handed as (${handOver ?? sql`select null::int as id where false`}),
    r as (
      select * from jsonb_to_recordset(${jsonb(rows)}) as r(followup_id int, step int, company_id int, client_id int,
        next_status text, next_due timestamptz, subject text, from_name text, from_email text,
        external_id text, in_reply_to text)
    ),
    h0 as (
      -- one unique-key lookup per record, whatever the planner thinks of the table's size (a
      -- hash join over the whole history was its choice on a freshly filled table); rows are
      -- locked in the records' order, the same (company, client, follow-up) order in every statement
      select h.id, r.* from r cross join lateral (
        select x.id from followup_history x
        where x.followup_id = r.followup_id and x.step = r.step and x.delivery in ('sending', 'unknown')
        for update
      ) h
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
    select followup_id, step, null::int as handed_id from h
    union all select null, null, id from handed`,
  );
  return {
    recorded: out.filter((x) => x.followup_id !== null).map((x) => ({ followup_id: x.followup_id!, step: x.step! })),
    handedIds: out.filter((x) => x.handed_id !== null).map((x) => Number(x.handed_id)),
  };
}

export type FailedRecord = {
  followupId: number;
  step: number;
  companyId: number;
  error: string;
  nextAttemptAt: Date | null;
  final: boolean;
  notification: { title: string; message: string; linkUrl: string; linkText: string } | null;
};

/**
 * The SMTP server said no: history `failed` with the error and the back-off; the follow-up's
 * due date follows the retry. After the last try the follow-up goes on hold and the company gets
 * one FOLLOWUP_FAILED notification (dedupe key per follow-up and step). One statement.
 */
export async function recordFailed(db: Executor, r: FailedRecord) {
  const n = r.notification;
  const rows = await queryRows<{ id: number }>(
    db,
    sql`
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
    select id from h`,
  );
  return rows.length > 0;
}
