/**
 * The statements of bounce handling (docs/bounces.md): set-based, lists as one jsonb parameter.
 * Every write is conditional, and the send_bounces insert (ON CONFLICT DO NOTHING RETURNING) is
 * what makes a bounce act once.
 */
import { sql, type SQL } from 'drizzle-orm';
import { jsonb, queryRows, type Executor } from '../../db/client.js';
import type { BounceSeverity } from '../mime/bounce.js';
import type { SendRef } from './match.js';
import { SEND_TABLES, type SendTable } from '../mail/sends.js';
import { rowLeaseFree } from '../../db/liveness.js';

const textList = (v: readonly string[]) => sql`(select jsonb_array_elements_text(${jsonb(v)}))`;

/** One company's bounces are decided one batch at a time (the soft-bounce count reads what the previous batch wrote). */
export async function lockCompanyBounces(db: Executor, scope: string) {
  await db.execute(sql`select pg_advisory_xact_lock(hashtext('bounces'), hashtext(${scope}))`);
}

export type PendingReport = {
  id: number;
  external_id: string;
  kind: 'bounce' | 'auto_reply';
  at: string;
  from_email: string | null;
  subject: string | null;
  bounce: import('../mime/report.js').StoredBounce | null;
  absence: import('../mime/absence.js').Absence | null;
};

/**
 * Delivery reports of a company not acted on yet: bounces without their send_bounces row, and
 * auto-replies whose announced return is not copied to the follow-ups yet. Only recent imports
 * (the index `inbox_messages_reports_idx`); anything older was acted on by an earlier run.
 */
export async function pendingReports(db: Executor, companyId: number, sinceDays: number, limit: number) {
  return queryRows<PendingReport>(
    db,
    sql`
    select im.id, im.external_id, im.kind, coalesce(least(im.sent_at, im.created_at), im.created_at)::text as at, im.from_email,
           im.external_metadata->>'subject' as subject, im.external_metadata->'bounce' as bounce, im.external_metadata->'absence' as absence
    from inbox_messages im
    where im.company_id = ${companyId} and ${isPendingReport(sinceDays)}
    order by im.id
    limit ${limit}`,
  );
}

/**
 * A delivery report (`im`, an inbox_messages row) not acted on yet: a bounce without its
 * send_bounces row, or an auto-reply whose announced return is not copied yet; recent only.
 */
function isPendingReport(sinceDays: number): SQL {
  return sql`im.kind in ('bounce', 'auto_reply')
      and im.created_at >= now() - make_interval(days => ${sinceDays}) and im.external_id is not null
      and case when im.kind = 'bounce'
            then im.external_metadata ? 'bounce' and not exists (select 1 from send_bounces sb where sb.scope = 'company:' || im.company_id and sb.bounce_key = im.external_id)
            else im.external_metadata ? 'absence' and not im.external_metadata ? 'absence_applied' end`;
}

/** Which of these companies have a delivery report to act on: one statement, before any per-company transaction. */
export async function companiesWithPendingReports(db: Executor, companyIds: number[], sinceDays: number): Promise<number[]> {
  if (!companyIds.length) return [];
  const rows = await queryRows<{ company_id: number }>(
    db,
    sql`
    select distinct im.company_id from inbox_messages im
    where im.company_id in (select (jsonb_array_elements_text(${jsonb(companyIds)}))::int) and ${isPendingReport(sinceDays)}`,
  );
  return rows.map((r) => Number(r.company_id));
}

type SendRow = {
  kind: SendRef['kind'];
  id: number;
  company_id: number | null;
  message_id: string | null;
  recipient: string | null;
  subject: string | null;
  sent_at: string | null;
  client_id: number | null;
  client_name: string | null;
  followup_id: number | null;
  label: string | null;
};

/** The sends of every sender (lib/mail/sends.ts) that a bounce can still be about, matching `where` (built per sender's columns). */
const SENDS = (where: (v: SendTable['bounceView']) => SQL) =>
  sql.join(
    SEND_TABLES.map((t) =>
      t.bounceView.select(sql`${sql.identifier(t.alias)}.delivery in ('sent', 'unknown', 'bounced') and ${where(t.bounceView)}`),
    ),
    sql` union all `,
  );

/**
 * Our sends a batch of bounces may be about: by Message-ID (any company when `companyId` is
 * null: the platform mailbox), and — inside one company only — to one of the failed addresses
 * within the window.
 */
export async function candidateSends(
  db: Executor,
  p: { companyId: number | null; messageIds: string[]; recipients: string[]; since: Date; until: Date },
): Promise<SendRef[]> {
  const ids = [...new Set(p.messageIds)].map((id) => `<${id}>`);
  const parts: SQL[] = [];
  if (ids.length) {
    parts.push(
      SENDS((v) => sql`${v.messageId} in ${textList(ids)} and ${p.companyId === null ? sql`true` : sql`${v.companyId} = ${p.companyId}`}`),
    );
  }
  if (p.companyId !== null && p.recipients.length) {
    const { companyId } = p;
    parts.push(
      SENDS(
        (v) => sql`${v.companyId} = ${companyId} and ${v.sentAt} >= ${p.since.toISOString()}::timestamptz
      and ${v.sentAt} <= ${p.until.toISOString()}::timestamptz and ${v.recipient} in ${textList(p.recipients)}`,
      ),
    );
  }
  if (!parts.length) return [];
  const rows = await queryRows<SendRow>(db, sql.join(parts, sql` union `));
  const seen = new Set<string>();
  return rows.flatMap((r) => {
    const k = `${r.kind}:${r.id}`;
    if (seen.has(k)) return [];
    seen.add(k);
    return [
      {
        kind: r.kind,
        id: Number(r.id),
        companyId: r.company_id === null ? null : Number(r.company_id),
        messageId: r.message_id,
        recipient: r.recipient,
        subject: r.subject,
        sentAt: r.sent_at ? new Date(r.sent_at) : null,
        clientId: r.client_id === null ? null : Number(r.client_id),
        clientName: r.client_name,
        followupId: r.followup_id === null ? null : Number(r.followup_id),
        label: r.label,
      },
    ];
  });
}

/** The severities already recorded for some (company, address) pairs since `since`, oldest first. */
export async function bounceHistory(db: Executor, pairs: { company_id: number; recipient: string }[], since: Date) {
  const out = new Map<string, BounceSeverity[]>();
  if (!pairs.length) return out;
  const rows = await queryRows<{ company_id: number; recipient: string; severity: BounceSeverity }>(
    db,
    sql`
    select sb.company_id, sb.recipient, sb.severity
    from jsonb_to_recordset(${jsonb(pairs)}) as p(company_id int, recipient text)
    join send_bounces sb on sb.company_id = p.company_id and sb.recipient = p.recipient
    where sb.outcome in ('hard', 'soft') and sb.bounced_at >= ${since.toISOString()}::timestamptz
    order by sb.bounced_at, sb.id`,
  );
  for (const r of rows) {
    const k = `${r.company_id}:${r.recipient}`;
    out.set(k, [...(out.get(k) ?? []), r.severity]);
  }
  return out;
}

export type BounceRow = {
  scope: string;
  bounce_key: string;
  company_id: number | null;
  inbox_message_id: number | null;
  send_kind: string | null;
  send_id: number | null;
  client_id: number | null;
  recipient: string | null;
  severity: string | null;
  effective_severity: string | null;
  outcome: string;
  matched_by: string | null;
  status_code: string | null;
  diagnostic: string | null;
  bounced_at: string;
};

/** The claim of each bounce: what comes back is this run's to act on; the rest was acted on already. */
export async function insertBounces(db: Executor, rows: BounceRow[]) {
  if (!rows.length) return [];
  return queryRows<{ id: number; bounce_key: string }>(
    db,
    sql`
    insert into send_bounces (scope, bounce_key, company_id, inbox_message_id, send_kind, send_id, client_id, recipient, severity,
                              effective_severity, outcome, matched_by, status_code, diagnostic, bounced_at)
    select scope, bounce_key, company_id, inbox_message_id, send_kind, send_id, client_id, recipient, severity,
           effective_severity, outcome, matched_by, status_code, diagnostic, bounced_at
    from jsonb_to_recordset(${jsonb(rows)}) as r(scope text, bounce_key text, company_id int, inbox_message_id int, send_kind text, send_id int,
      client_id int, recipient text, severity text, effective_severity text, outcome text, matched_by text, status_code text, diagnostic text,
      bounced_at timestamptz)
    on conflict (scope, bounce_key) do nothing
    returning id, bounce_key`,
  );
}

export type HardBounce = {
  send_kind: string;
  send_id: number;
  error: string;
  company_id: number | null;
  client_id: number | null;
  recipient: string;
};
export type BounceNotification = {
  company_id: number;
  client_id: number;
  recipient: string;
  title: string;
  message: string;
  link_url: string;
  link_text: string;
};

/**
 * Hard bounces, one statement: the sends become `bounced` (code and diagnostic in `error`), the
 * client's automatic follow-ups still running go on hold (`EN_ATTENTE`, reason `bounced`), and
 * the company gets one EMAIL_BOUNCED notification per (client, address).
 */
export async function applyHardBounces(db: Executor, hard: HardBounce[], notifications: BounceNotification[]) {
  if (!hard.length) return { sends: 0, held: 0, notified: 0 };
  const [r] = await queryRows<{ sends: number; held: number; notified: number }>(
    db,
    sql`
    with b as (select * from jsonb_to_recordset(${jsonb(hard)}) as b(send_kind text, send_id int, error text, company_id int, client_id int, recipient text)),
    ${sql.join(
      SEND_TABLES.map(
        (t, i) => sql`${sql.identifier(`bounced_${i}`)} as (
      update ${sql.identifier(t.name)} x set delivery = 'bounced', error = b.error from b
      where b.send_kind = ${t.kind} and x.id = b.send_id and x.delivery in ('sent', 'unknown')
      returning x.id
    ),`,
      ),
      sql`
`,
    )}
    held as (
      update followups f set status = 'EN_ATTENTE', hold_reason = 'bounced', updated_at = now()
      from b join clients c on c.id = b.client_id and c.company_id = b.company_id
      where f.company_id = b.company_id and f.client_id = b.client_id and f.auto_enabled
        and f.status in ('A_FAIRE', 'EN_ATTENTE') and f.hold_reason is distinct from 'bounced'
        and lower(trim(c.email)) = b.recipient
      returning f.id
    ),
    n as (
      insert into notifications (company_id, user_id, type, title, message, link_url, link_text, source_type, source_id, dedupe_key)
      select company_id, null, 'EMAIL_BOUNCED', title, message, link_url, link_text, 'client', client_id, 'bounced:' || recipient
      from jsonb_to_recordset(${jsonb(notifications)}) as n(company_id int, client_id int, recipient text, title text, message text, link_url text, link_text text)
      on conflict do nothing
      returning id
    )
    select ${sql.join(
      SEND_TABLES.map((_, i) => sql`(select count(*) from ${sql.identifier(`bounced_${i}`)})::int`),
      sql` + `,
    )} as sends,
           (select count(*) from held)::int as held, (select count(*) from n)::int as notified`,
  );
  return r;
}

/**
 * An out-of-office's announced return, copied to the sender's follow-ups still running (it changes
 * nothing else); the messages are marked so it is done once.
 */
export async function applyAbsences(
  db: Executor,
  companyId: number,
  items: { message_id: number; email: string; until: string | null; note: string }[],
) {
  if (!items.length) return 0;
  const [r] = await queryRows<{ n: number }>(
    db,
    sql`
    with a as (select * from jsonb_to_recordset(${jsonb(items)}) as a(message_id int, email text, until date, note text)),
    latest as (select distinct on (email) email, until, note from a order by email, message_id desc),
    f as (
      update followups f set client_away_until = l.until, client_away_note = l.note, updated_at = now()
      from latest l join clients c on c.company_id = ${companyId} and lower(trim(c.email)) = l.email
      where f.company_id = ${companyId} and f.client_id = c.id and f.status in ('A_FAIRE', 'EN_ATTENTE')
      returning f.id
    ),
    m as (
      update inbox_messages im set external_metadata = im.external_metadata || '{"absence_applied": true}'::jsonb
      where im.id in (select message_id from a) and im.company_id = ${companyId}
      returning im.id
    )
    select (select count(*) from f)::int + 0 * (select count(*) from m)::int as n`,
  );
  return r.n;
}

/**
 * Of the clients `clientIds` (a subquery of ids), the ones whose current address is known bounced
 * hard (their emails wait): a subquery, part of the statement that loads a batch's facts.
 */
export const clientsWithBouncedAddress = (clientIds: SQL): SQL => sql`
  select c.id from clients c
  where c.id in (${clientIds})
    and exists (select 1 from send_bounces sb where sb.company_id = c.company_id and sb.recipient = lower(trim(c.email)) and sb.outcome = 'hard')`;

/**
 * Follow-ups on hold because of a bounce whose client has a new address since: back to `A_FAIRE`
 * (the bounced step is sent again, to the new address).
 */
export async function resumeBouncedFollowups(db: Executor, scope: SQL, now: Date) {
  const rows = await queryRows<{ id: number }>(
    db,
    sql`
    update followups f set status = 'A_FAIRE', hold_reason = null, updated_at = now(),
      -- the step that bounced is due again at once; a follow-up held only for its client's address keeps its date
      due_date = case when exists (select 1 from followup_history h where h.followup_id = f.id and h.delivery = 'bounced')
                      then least(f.due_date, ${now.toISOString()}::timestamptz) else f.due_date end
    from clients c
    where f.status = 'EN_ATTENTE' and f.hold_reason = 'bounced' and c.id = f.client_id and ${scope}
      and nullif(trim(c.email), '') is not null
      and not exists (select 1 from send_bounces sb where sb.company_id = f.company_id and sb.recipient = lower(trim(c.email)) and sb.outcome = 'hard')
    returning f.id`,
  );
  return rows.length;
}

/** Bounces recorded over the last `hours` (optionally of one kind of send, inside a scope): hard, soft, ignored. */
export async function countRecentBounces(db: Executor, hours: number, where: SQL = sql`true`) {
  const [r] = await queryRows<{ hard: number; soft: number; ignored: number }>(
    db,
    sql`
    select count(*) filter (where outcome = 'hard')::int as hard, count(*) filter (where outcome = 'soft')::int as soft,
           count(*) filter (where outcome = 'ignored')::int as ignored
    from send_bounces sb where sb.created_at >= now() - make_interval(hours => ${hours}) and ${where}`,
  );
  return r;
}

/** Of these (company, address) pairs, the ones known bounced hard in their company. */
export async function hardBouncedPairs(db: Executor, pairs: { company_id: number; recipient: string }[]) {
  return queryRows<{ company_id: number; recipient: string }>(
    db,
    sql`
    select distinct p.company_id, p.recipient from jsonb_to_recordset(${jsonb(pairs)}) as p(company_id int, recipient text)
    where exists (select 1 from send_bounces sb where sb.company_id = p.company_id and sb.recipient = p.recipient and sb.outcome = 'hard')`,
  );
}

/** The platform bounce mailbox's cursor, claimed with its lease (undefined: another run reads it). */
export async function claimBounceMailbox(db: Executor, mailbox: string, leaseSec: number, holder: string) {
  await db.execute(sql`insert into bounce_mailbox_cursors (mailbox) values (${mailbox}) on conflict do nothing`);
  const [cursor] = await queryRows<{ uid_validity: string | null; last_uid: string | null }>(
    db,
    sql`
    update bounce_mailbox_cursors set lease_until = now() + make_interval(secs => ${leaseSec}), lease_holder = ${holder}
    where mailbox = ${mailbox} and ${rowLeaseFree(sql`lease_until`, sql`lease_holder`)}
    returning uid_validity::text, last_uid::text`,
  );
  return cursor;
}

/** Releases the platform bounce mailbox, with the cursor it reached (null: unchanged) and the last error. */
export async function releaseBounceMailbox(
  db: Executor,
  mailbox: string,
  next: { uidValidity: number; lastUid: number } | null,
  error: string | null,
) {
  await db.execute(sql`
    update bounce_mailbox_cursors set lease_until = null, lease_holder = null, updated_at = now(),
      uid_validity = ${next ? next.uidValidity : sql`uid_validity`}, last_uid = ${next ? next.lastUid : sql`last_uid`},
      last_sync_at = ${next ? sql`now()` : sql`last_sync_at`}, last_error = ${error}
    where mailbox = ${mailbox}`);
}
