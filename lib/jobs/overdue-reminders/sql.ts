import { sql, type SQL } from 'drizzle-orm';
import { queryRows, type Executor } from '../../../db/client.js';
import { scopeFilter } from '../../cron/scope.js';
import type { Scope } from '../../cron/types.js';
import { companyZoneSetting, isKnownZone, zoneSql } from '../../time/zone.js';
import { DAY_PLURAL, DUE_WHEN, PRIORITY_LABELS, TEXTS } from './messages.js';
import { links } from '../../links.js';
import { openIssuedInvoice } from '../../billing/sql.js';
import { CRITICAL_HORIZON_HOURS, CRITICAL_PRIORITIES, OVERDUE_REPEAT_DAYS } from './plan.js';

/**
 * The statements of the notification parts, the expired trials and the zone check (the
 * appointment reminders' are in sql-reminders.ts): whole set-based statements. Each notification part is ONE statement
 * (candidates → status change → INSERT … ON CONFLICT DO NOTHING → counts), so the number of
 * statements never grows with the number of rows. "Today" is computed in SQL in each company's
 * zone (joined in the same statement), validated by lib/time/zone.ts's rule (known to luxon and
 * PostgreSQL), so that one company's zone can never fail the statement for the others.
 */

export type PartParams = { now: Date; scope: Scope; frontendUrl: string };

/** Statements carry a tag comment so a benchmark (or pg_stat_statements) can count them per part. */
export const tag = (name: string) => sql.raw(`/* overdue-reminders:${name} */ `);

export const nowParam = (now: Date) => sql`${now.toISOString()}::timestamptz`;

/**
 * Each company in scope with its zone: `company_info.timezone` when it is valid (zoneSql: the
 * same rule as the JavaScript side), else the default; an unknown zone must not break the
 * statement for everyone.
 */
function zonesCte(scope: Scope): SQL {
  return sql`zones as (
    select c.id as company_id, ${zoneSql(companyZoneSetting(sql`c.id`))} as tz
    from companies c
    where c.is_active and ${scopeFilter(sql`c.id`, scope)}
  )`;
}

/**
 * Active companies in scope whose zone setting is unusable (reported as item errors; their
 * notifications use the default zone). The raw values are checked in JavaScript by the one rule.
 */
export async function companiesWithInvalidZone(db: Executor, scope: Scope): Promise<{ companyId: number; timezone: unknown }[]> {
  const rows = await queryRows<{ company_id: number; tz: unknown }>(
    db,
    sql`${tag('zones:invalid')}
    select c.id as company_id, cs.settings #> '{company_info,timezone}' as tz
    from companies c join company_settings cs on cs.company_id = c.id
    where c.is_active and ${scopeFilter(sql`c.id`, scope)}
      and jsonb_typeof(cs.settings) = 'object' and jsonb_typeof(cs.settings -> 'company_info') = 'object'
      and cs.settings -> 'company_info' ? 'timezone'
      and coalesce(cs.settings #>> '{company_info,timezone}', '') <> ''
    order by c.id`,
  );
  return rows.filter((r) => !isKnownZone(r.tz)).map((r) => ({ companyId: r.company_id, timezone: r.tz }));
}

/** `dd/mm/yyyy` of an instant in the company's zone. */
const frDate = (col: SQL) => sql`to_char(${col} at time zone z.tz, 'DD/MM/YYYY')`;
/** A stable text for an instant (UTC, microseconds): part of dedupe keys. */
export const isoInstant = (col: SQL) => sql`to_char(${col} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * The candidate rows of each notification part, all with the same columns (those of
 * `notifications` plus `entity_status`). Shared by the real run and the dry run.
 */
function invoiceCandidates(p: PartParams): SQL {
  const now = nowParam(p.now);
  return sql`select i.company_id, null::int as user_id, 'INVOICE_OVERDUE'::notificationtype as type,
      ${TEXTS.invoiceOverdue.title}::text as title,
      format(${TEXTS.invoiceOverdue.message}::text, i.number, d.days, ${plural}, ${frDate(sql`i.due_date`)}) as message,
      ${links.invoicePrefix(p.frontendUrl)}::text || i.id as link_url,
      ${TEXTS.invoiceOverdue.linkText}::text as link_text,
      'invoice'::text as source_type, i.id as source_id,
      'due:' || ${isoInstant(sql`i.due_date`)} || ';week:' || ((d.days - 1) / ${OVERDUE_REPEAT_DAYS}) as dedupe_key,
      i.status::text as entity_status
    from invoices i
    join zones z on z.company_id = i.company_id
    cross join lateral (select ((${now} at time zone z.tz)::date - (i.due_date at time zone z.tz)::date) as days) d
    where ${openIssuedInvoice('i')}
      and i.due_date is not null and i.due_date < ${now} and d.days >= 1`;
}

/** "jour" or "jours" after the number of days `d.days`. */
const plural = sql`case when d.days > 1 then ${DAY_PLURAL}::text else '' end`;

/** The assignee when it is an active user of the company, else the whole company (null). */
const assigneeJoin = sql`left join users u on u.id = t.assigned_to_id and u.company_id = t.company_id and u.is_active`;

function overdueTaskCandidates(p: PartParams): SQL {
  const now = nowParam(p.now);
  return sql`select t.company_id, u.id as user_id, 'TASK_OVERDUE'::notificationtype as type,
      ${TEXTS.taskOverdue.title}::text as title,
      format(${TEXTS.taskOverdue.message}::text, t.title, d.days, ${plural}, ${frDate(sql`t.due_date`)}) as message,
      ${links.tasks(p.frontendUrl)}::text as link_url,
      ${TEXTS.taskOverdue.linkText}::text as link_text,
      'task'::text as source_type, t.id as source_id,
      'due:' || ${isoInstant(sql`t.due_date`)} as dedupe_key,
      t.status::text as entity_status
    from tasks t
    join zones z on z.company_id = t.company_id
    ${assigneeJoin}
    cross join lateral (select ((${now} at time zone z.tz)::date - (t.due_date at time zone z.tz)::date) as days) d
    where t.status <> 'TERMINE' and t.due_date is not null and t.due_date < ${now} and d.days >= 1`;
}

function criticalTaskCandidates(p: PartParams): SQL {
  const now = nowParam(p.now);
  const priorities = sql.join(
    CRITICAL_PRIORITIES.map((x) => sql`${x}`),
    sql`, `,
  );
  const label = sql.join(
    CRITICAL_PRIORITIES.map((x) => sql`when ${x} then ${PRIORITY_LABELS[x]}`),
    sql` `,
  );
  return sql`select t.company_id, u.id as user_id, 'TASK_CRITICAL'::notificationtype as type,
      ${TEXTS.taskCritical.title}::text as title,
      format(${TEXTS.taskCritical.message}::text, t.title, (case lower(t.priority) ${label} end)::text,
        case d.days when 0 then ${DUE_WHEN.today}::text when 1 then ${DUE_WHEN.tomorrow}::text else format(${DUE_WHEN.inDays}::text, d.days) end,
        ${frDate(sql`t.due_date`)}) as message,
      ${links.tasks(p.frontendUrl)}::text as link_url,
      ${TEXTS.taskCritical.linkText}::text as link_text,
      'task'::text as source_type, t.id as source_id,
      'due:' || ${isoInstant(sql`t.due_date`)} as dedupe_key,
      t.status::text as entity_status
    from tasks t
    join zones z on z.company_id = t.company_id
    ${assigneeJoin}
    cross join lateral (select ((t.due_date at time zone z.tz)::date - (${now} at time zone z.tz)::date) as days) d
    where t.status <> 'TERMINE' and lower(t.priority) in (${priorities})
      and t.due_date is not null and d.days >= 0
      and t.due_date <= ${now} + make_interval(hours => ${CRITICAL_HORIZON_HOURS})`;
}

export type NotificationPart = 'invoices' | 'overdueTasks' | 'criticalTasks';

const CANDIDATES: Record<NotificationPart, (p: PartParams) => SQL> = {
  invoices: invoiceCandidates,
  overdueTasks: overdueTaskCandidates,
  criticalTasks: criticalTaskCandidates,
};

export const NOTIFICATION_COLUMNS = sql`company_id, user_id, type, title, message, link_url, link_text, source_type, source_id, dedupe_key`;

export type PartResult = { candidates: number; created: number; alreadyNotified: number; markedOverdue?: number; sample: unknown[] };

/**
 * One notification part in one statement. Overdue invoices also move to EN_RETARD; rows another
 * run holds are skipped (SKIP LOCKED), since that run sets the same status. Rows are inserted in
 * a fixed order so that concurrent runs wait on each other instead of deadlocking.
 */
export async function runNotificationPart(db: Executor, part: NotificationPart, p: PartParams): Promise<PartResult> {
  const statusUpdate =
    part === 'invoices'
      ? sql`, upd as (
        update invoices set status = 'EN_RETARD'
        where id in (select inv.id from invoices inv join cand on cand.source_id = inv.id
                     where inv.status <> 'EN_RETARD' for update of inv skip locked)
        returning id)`
      : sql``;
  const rows = await queryRows<{ candidates: number; created: number; marked: number | null; sample: unknown[] | null }>(
    db,
    sql`${tag(part)}
    with ${zonesCte(p.scope)},
    cand as (${CANDIDATES[part](p)})
    ${statusUpdate},
    ins as (
      insert into notifications (${NOTIFICATION_COLUMNS})
      select ${NOTIFICATION_COLUMNS} from cand order by company_id, source_id, dedupe_key
      on conflict do nothing
      returning company_id, source_id, dedupe_key, title
    )
    select (select count(*)::int from cand) as candidates,
           (select count(*)::int from ins) as created,
           ${part === 'invoices' ? sql`(select count(*)::int from upd)` : sql`null::int`} as marked,
           (select (array_agg(jsonb_build_object('companyId', company_id, 'sourceId', source_id, 'dedupeKey', dedupe_key))
                    )[1:10] from ins) as sample`,
  );
  const r = rows[0];
  return {
    candidates: r.candidates,
    created: r.created,
    alreadyNotified: r.candidates - r.created,
    ...(part === 'invoices' ? { markedOverdue: r.marked ?? 0 } : {}),
    sample: (r.sample ?? []).map((s) => ({ part, action: 'notify', ...(s as object) })),
  };
}

/** The dry-run mirror of runNotificationPart: the same candidates, nothing written. */
export async function planNotificationPart(db: Executor, part: NotificationPart, p: PartParams, sampleSize: number): Promise<PartResult> {
  const rows = await queryRows<{ candidates: number; already: number; to_mark: number; sample: unknown[] | null }>(
    db,
    sql`${tag(`${part}:dry-run`)}
    with ${zonesCte(p.scope)},
    cand as (${CANDIDATES[part](p)}),
    marked as (
      select cand.*, exists (
        select 1 from notifications n
        where n.company_id = cand.company_id and n.type = cand.type
          and n.source_type is not distinct from cand.source_type and n.source_id is not distinct from cand.source_id
          and n.dedupe_key is not distinct from cand.dedupe_key) as already
      from cand)
    select count(*)::int as candidates,
           count(*) filter (where already)::int as already,
           count(*) filter (where entity_status <> 'EN_RETARD')::int as to_mark,
           (array_agg(jsonb_build_object('companyId', company_id, 'userId', user_id, 'sourceId', source_id,
                      'dedupeKey', dedupe_key, 'title', title, 'message', message, 'linkUrl', link_url)
                      order by company_id, source_id) filter (where not already))[1:${sampleSize}] as sample
    from marked`,
  );
  const r = rows[0];
  return {
    candidates: r.candidates,
    created: r.candidates - r.already,
    alreadyNotified: r.already,
    ...(part === 'invoices' ? { markedOverdue: r.to_mark } : {}),
    sample: (r.sample ?? []).map((s) => ({ part, action: 'notify', ...(s as object) })),
  };
}

// ---------------------------------------------------------------------------------------------
// Expired trials: a trial that ended without a Stripe subscription
// ---------------------------------------------------------------------------------------------

function expiredTrialsWhere(p: { now: Date; scope: Scope }): SQL {
  return sql`s.status = 'TRIALING' and s.stripe_subscription_id is null and s.trial_end < ${nowParam(p.now)}
    and ${scopeFilter(sql`s.company_id`, p.scope)}`;
}

export async function expireTrials(
  db: Executor,
  p: { now: Date; scope: Scope; dryRun: boolean },
): Promise<{ expired: number; companyIds: number[] }> {
  const rows = p.dryRun
    ? await queryRows<{ company_id: number }>(
        db,
        sql`${tag('trials:dry-run')}
        select s.company_id from subscriptions s where ${expiredTrialsWhere(p)} order by s.company_id`,
      )
    : await queryRows<{ company_id: number }>(
        db,
        sql`${tag('trials')}
        update subscriptions set status = 'INCOMPLETE_EXPIRED'
        where id in (select s.id from subscriptions s where ${expiredTrialsWhere(p)} for update of s skip locked)
        returning company_id`,
      );
  return { expired: rows.length, companyIds: rows.map((r) => r.company_id) };
}
