import { sql } from 'drizzle-orm';
import { queryRows, type Db, type Executor } from '../../db/client.js';
import { settleUnknown } from '../mail/claimed-send.js';
import { SEND_KINDS, SEND_TABLES, sendTableOf, type SendKind, type SendTable } from '../mail/sends.js';
import { mailboxInService, waitingForCompany } from '../jobs/inbox-sync/eligibility.js';

/** How far back the runs timeline reaches. */
export const TIMELINE_DAYS = 7;
/** Runs drawn per job: a 5-minute job runs ~2,000 times in 7 days; the newest are kept. */
export const TIMELINE_MAX_RUNS = 2_100;
export const LAST_ERRORS = 5;
export const LISTED_ROWS = 100;
export const LISTED_ACTIONS = 20;

const asDate = (v: unknown): Date | null => (v === null || v === undefined ? null : v instanceof Date ? v : new Date(String(v)));

export type TimelineRun = { job: string; startedAt: Date; durationMs: number | null; outcome: string; dryRun: boolean };

export async function readTimeline(db: Db, now: Date): Promise<TimelineRun[]> {
  const rows = await queryRows<{ job: string; started_at: Date; finished_at: Date | null; outcome: string; dry_run: boolean }>(
    db,
    sql`
    select job, started_at, finished_at, outcome::text as outcome, dry_run from (
      select *, row_number() over (partition by job order by started_at desc) as rn from cron_runs
      where started_at >= ${now}::timestamptz - make_interval(days => ${TIMELINE_DAYS}) and started_at <= ${now}::timestamptz
    ) r where rn <= ${TIMELINE_MAX_RUNS} order by started_at`,
  );
  return rows.map((r) => {
    const s = asDate(r.started_at)!;
    const f = asDate(r.finished_at);
    return { job: r.job, startedAt: s, durationMs: f ? f.getTime() - s.getTime() : null, outcome: r.outcome, dryRun: r.dry_run };
  });
}

export type RunError = { job: string; startedAt: Date; error: string };

/** The latest errors of each job over the timeline's days. */
export async function readLastErrors(db: Db, now: Date): Promise<RunError[]> {
  const rows = await queryRows<{ job: string; started_at: Date; error: string }>(
    db,
    sql`
    select job, started_at, error from (
      select job, started_at, error, row_number() over (partition by job order by started_at desc) as rn
      from cron_runs where error is not null and started_at >= ${now}::timestamptz - make_interval(days => ${TIMELINE_DAYS})
    ) r where rn <= ${LAST_ERRORS} order by started_at desc`,
  );
  return rows.map((r) => ({ job: r.job, startedAt: asDate(r.started_at)!, error: r.error }));
}

export type MailboxProblem = {
  id: number;
  companyId: number;
  companyName: string | null;
  name: string;
  email: string | null;
  status: string | null;
  error: string | null;
  failures: number;
  lastSyncAt: Date | null;
  nextSyncAt: Date | null;
};

/**
 * Mailboxes in service (lib/jobs/inbox-sync/eligibility.ts) in error, waiting for their company
 * (paused, needs_reauth: those first), or waiting out a back-off.
 */
export async function readMailboxProblems(db: Db, now: Date): Promise<MailboxProblem[]> {
  const rows = await queryRows<Record<string, unknown>>(
    db,
    sql`
    select i.id, i.company_id, co.name as company_name, i.name, i.email_address, i.last_sync_status, i.last_sync_error,
           i.consecutive_failures, i.last_sync_at, i.next_sync_at
    from inbox_integrations i left join companies co on co.id = i.company_id
    where ${mailboxInService()} and (i.last_sync_status in ('error', 'auth_error') or ${waitingForCompany()} or i.next_sync_at > ${now}::timestamptz)
    order by coalesce(${waitingForCompany()}, false) desc, i.consecutive_failures desc, i.id
    limit ${LISTED_ROWS}`,
  );
  return rows.map((r) => ({
    id: Number(r.id),
    companyId: Number(r.company_id),
    companyName: (r.company_name as string | null) ?? null,
    name: String(r.name),
    email: (r.email_address as string | null) ?? null,
    status: (r.last_sync_status as string | null) ?? null,
    error: (r.last_sync_error as string | null) ?? null,
    failures: Number(r.consecutive_failures ?? 0),
    lastSyncAt: asDate(r.last_sync_at),
    nextSyncAt: asDate(r.next_sync_at),
  }));
}

export type UnknownSend = {
  kind: SendKind;
  id: number;
  ref: string;
  companyName: string | null;
  recipient: string | null;
  subject: string;
  at: Date;
  error: string | null;
};

/** `followup_step:12` / `appointment_reminder:7` / `deletion_email:3`: how the page and the CLI name an unknown send. */
export function sendRef(kind: SendKind, id: number): string {
  return `${kind}:${id}`;
}

export function parseSendRef(ref: string): { table: SendTable; id: number } | null {
  const m = /^([a-z_]{1,40}):(\d{1,10})$/.exec(ref.trim());
  const table = m ? sendTableOf(m[1]) : undefined;
  return m && table ? { table, id: Number(m[2]) } : null;
}

/** The reference's expected form, for error messages: every sender's kind (lib/mail/sends.ts). */
export const SEND_REF_FORMS = SEND_KINDS.map((k) => `${k}:<id>`).join(' | ');

/**
 * Sends whose outcome nobody knows (the invocation died between the SMTP answer and its record):
 * never re-sent automatically; an operator checks the Sent folder and decides. Every sender's
 * console view (lib/mail/sends.ts), one statement.
 */
export async function readUnknownSends(db: Executor): Promise<UnknownSend[]> {
  const views = SEND_TABLES.map((t) => t.consoleView(sql`${sql.identifier(t.alias)}.delivery = 'unknown'`));
  const rows = await queryRows<Record<string, unknown>>(
    db,
    sql`
    select * from (${sql.join(views, sql` union all `)}) u order by at desc, kind, id limit ${LISTED_ROWS}`,
  );
  return rows.map((r) => ({
    kind: r.kind as SendKind,
    id: Number(r.id),
    ref: sendRef(r.kind as SendKind, Number(r.id)),
    companyName: (r.company_name as string | null) ?? null,
    recipient: (r.recipient as string | null) ?? null,
    subject: String(r.subject),
    at: asDate(r.at)!,
    error: (r.error as string | null) ?? null,
  }));
}

export type OperatorAction = { id: number; at: Date; actor: string; action: string; target: string; details: Record<string, unknown> };

export async function recordAction(
  db: Executor,
  a: { actor: string; action: string; target: string; details?: Record<string, unknown> },
): Promise<number> {
  const rows = await queryRows<{ id: number }>(
    db,
    sql`
    insert into operator_actions (actor, action, target, details)
    values (${a.actor}, ${a.action}, ${a.target}, ${JSON.stringify(a.details ?? {})}::jsonb) returning id`,
  );
  return Number(rows[0].id);
}

export async function readActions(db: Db, limit = LISTED_ACTIONS): Promise<OperatorAction[]> {
  const rows = await queryRows<Record<string, unknown>>(
    db,
    sql`
    select id, at, actor, action, target, details from operator_actions order by at desc, id desc limit ${limit}`,
  );
  return rows.map((r) => ({
    id: Number(r.id),
    at: asDate(r.at)!,
    actor: String(r.actor),
    action: String(r.action),
    target: String(r.target),
    details: (r.details ?? {}) as Record<string, unknown>,
  }));
}

export class ActionError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Resumes a mailbox: forgets its failures and back-off, so the next inbox-sync run tries it. Its
 * cursor is kept (no message is imported twice). Recorded in the same transaction.
 */
export async function resumeIntegration(
  db: Db,
  integrationId: number,
  actor: string,
): Promise<{ actionId: number; previous: { status: string | null; failures: number } }> {
  return db.transaction(async (tx) => {
    const rows = await queryRows<{ prev_status: string | null; prev_failures: number }>(
      tx,
      sql`
      with prev as (select id, last_sync_status, consecutive_failures from inbox_integrations where id = ${integrationId} for update)
      update inbox_integrations i set last_sync_status = null, last_sync_error = null, consecutive_failures = 0,
        next_sync_at = null, updated_at = now()
      from prev where i.id = prev.id
      returning prev.last_sync_status as prev_status, prev.consecutive_failures as prev_failures`,
    );
    if (!rows[0]) throw new ActionError('not_found', `boîte mail ${integrationId} introuvable`);
    const previous = { status: rows[0].prev_status, failures: Number(rows[0].prev_failures) };
    const actionId = await recordAction(tx, {
      actor,
      action: 'resume_integration',
      target: `inbox_integration:${integrationId}`,
      details: { previous },
    });
    return { actionId, previous };
  });
}

export type Resolution = 'sent' | 'resend';

/**
 * Settles an `unknown` send through the send protocol (lib/mail/claimed-send.ts `settleUnknown`).
 * `sent`: it went out (found in the Sent folder); recorded as sent, a follow-up goes on to its
 * next step. `resend`: it did not; the protocol's release, as the sender declares it (a
 * follow-up step keeps its history row and try count and is due again), so the next run sends
 * it. Only a row still `unknown` is touched: resolving twice changes nothing.
 */
export async function resolveUnknownSend(db: Db, ref: string, resolution: Resolution, actor: string): Promise<{ actionId: number }> {
  const parsed = parseSendRef(ref);
  if (!parsed) throw new ActionError('bad_request', `référence d'envoi invalide : « ${ref} » (attendu ${SEND_REF_FORMS})`);
  return db.transaction(async (tx) => {
    const settled = await settleUnknown(tx, parsed.table, parsed.id, resolution === 'sent' ? 'delivered' : 'not_delivered');
    if (!settled) throw new ActionError('not_found', `aucun envoi à l'état inconnu pour ${ref} (déjà résolu ?)`);
    const actionId = await recordAction(tx, {
      actor,
      action: 'resolve_send',
      target: sendRef(parsed.table.kind, parsed.id),
      details: { resolution },
    });
    return { actionId };
  });
}
