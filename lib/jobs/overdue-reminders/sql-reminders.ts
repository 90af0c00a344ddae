import { sql } from 'drizzle-orm';
import { queryRows, type Executor } from '../../../db/client.js';
import { scopeFilter } from '../../cron/scope.js';
import type { Scope } from '../../cron/types.js';
import { previewSweep, sweepClaims } from '../../mail/claimed-send.js';
import { REMINDER_SENDS } from '../../mail/sends.js';
import { MAX_REMINDER_HOURS, REMINDABLE_STATUSES, type Delivery } from './plan.js';
import { NOTIFICATION_COLUMNS, isoInstant, nowParam, tag } from './sql.js';

/**
 * The statements of the appointment reminders: the sweep of dead runs' claims, the reads the
 * planner (plan.ts) decides on, the batch claim, the answers, the employees' notifications.
 */

/**
 * Claims of dead runs (docs/sending.md): never handed to SMTP → given back (a later run sends
 * them while the appointment is ahead); handed over → `unknown`, never re-sent, in /cron/status.
 */
export async function sweepReminderClaims(
  db: Executor,
  p: { scope: Scope; dryRun: boolean },
): Promise<{ released: number; markedUnknown: number }> {
  const scope = scopeFilter(sql`company_id`, p.scope);
  if (p.dryRun) {
    const r = await previewSweep(db, REMINDER_SENDS, scope);
    return { released: r.released, markedUnknown: r.unknown };
  }
  const r = await sweepClaims(db, REMINDER_SENDS, scope);
  return { released: r.released, markedUnknown: r.unknownIds.length };
}

/** Companies in scope with an appointment ahead inside the largest reminder horizon, with their settings. */
export async function readReminderCompanies(db: Executor, p: { now: Date; scope: Scope }) {
  const now = nowParam(p.now);
  return queryRows<{ company_id: number; name: string; settings: unknown }>(
    db,
    sql`${tag('reminders:companies')}
    select c.id as company_id, c.name, cs.settings
    from companies c
    left join company_settings cs on cs.company_id = c.id
    where c.is_active and ${scopeFilter(sql`c.id`, p.scope)}
      and c.id in (select a.company_id from appointments a
                   where a.start_date_time > ${now} and a.start_date_time <= ${now} + make_interval(hours => ${MAX_REMINDER_HOURS}))
    order by c.id`,
  );
}

export type CandidateRow = {
  appointment_id: number;
  company_id: number;
  status: string;
  start: Date;
  start_iso: string;
  employee_id: number | null;
  hours_before: number;
  client_name: string | null;
  client_email: string | null;
  type_name: string | null;
  delivery: Delivery | null;
};

/**
 * Every (appointment, offset) whose send window contains `now`, whatever the appointment's status
 * (the planner counts why a cancelled one is not sent), with its claim if there is one.
 */
export async function readReminderCandidates(
  db: Executor,
  p: { now: Date; scope: Scope; offsets: { company_id: number; hours_before: number }[] },
): Promise<CandidateRow[]> {
  if (p.offsets.length === 0) return [];
  const now = nowParam(p.now);
  return queryRows<CandidateRow>(
    db,
    sql`${tag('reminders:candidates')}
    select a.id as appointment_id, a.company_id, a.status::text as status, a.start_date_time as start,
           ${isoInstant(sql`a.start_date_time`)} as start_iso, a.employee_id, o.hours_before,
           cl.name as client_name, cl.email as client_email, ty.name as type_name, r.delivery::text as delivery
    from jsonb_to_recordset(${JSON.stringify(p.offsets)}::jsonb) as o(company_id int, hours_before int)
    join appointments a on a.company_id = o.company_id
      and a.start_date_time > ${now}
      and a.start_date_time <= ${now} + make_interval(hours => o.hours_before)
    left join clients cl on cl.id = a.client_id
    left join appointment_types ty on ty.id = a.type_id
    left join appointment_reminders r on r.appointment_id = a.id and r.hours_before = o.hours_before
      and r.start_date_time = a.start_date_time
    where ${scopeFilter(sql`a.company_id`, p.scope)}
    order by a.start_date_time - make_interval(hours => o.hours_before), a.id, o.hours_before desc`,
  );
}

/**
 * Claims reminders before sending: one INSERT … ON CONFLICT DO NOTHING for the batch, re-checking
 * against the live appointment (still active, same start, still ahead). What comes back is ours.
 */
export async function claimReminders(
  db: Executor,
  p: { now: Date; scope: Scope; runId: string; items: { appointment_id: number; hours_before: number; start_iso: string }[] },
) {
  if (p.items.length === 0) return [];
  const statuses = sql.join(
    REMINDABLE_STATUSES.map((s) => sql`${s}`),
    sql`, `,
  );
  return queryRows<{ id: number; appointment_id: number; hours_before: number }>(
    db,
    sql`${tag('reminders:claim')}
    insert into appointment_reminders (company_id, appointment_id, hours_before, start_date_time, claimed_at, claimed_by, delivery)
    select a.company_id, a.id, i.hours_before, a.start_date_time, now(), ${p.runId}, 'sending'
    from jsonb_to_recordset(${JSON.stringify(p.items)}::jsonb) as i(appointment_id int, hours_before int, start_iso text)
    join appointments a on a.id = i.appointment_id and a.start_date_time = i.start_iso::timestamptz
    where a.status::text in (${statuses}) and a.start_date_time > ${nowParam(p.now)}
      and ${scopeFilter(sql`a.company_id`, p.scope)}
    order by a.id, i.hours_before
    on conflict (appointment_id, hours_before, start_date_time) do nothing
    returning id, appointment_id, hours_before`,
  );
}

export async function markReminderSent(db: Executor, id: number, messageId: string): Promise<void> {
  await db.execute(sql`${tag('reminders:sent')}
    update appointment_reminders set delivery = 'sent', sent_at = now(), message_id = ${messageId}, error = null
    where id = ${id} and delivery = 'sending'`);
}

/** A permanent refusal (5xx): kept as `failed`, not retried (repeated bounces hurt the sender). */
export async function markReminderFailed(db: Executor, id: number, error: string): Promise<void> {
  await db.execute(sql`${tag('reminders:failed')}
    update appointment_reminders set delivery = 'failed', error = ${error.slice(0, 500)}
    where id = ${id} and delivery = 'sending'`);
}

export type ReminderNotification = {
  reminder_id: number;
  title: string;
  message: string;
  link_url: string;
  link_text: string;
  dedupe_key: string;
};

/** APPOINTMENT_REMINDER for the employee (or the company) of each reminder that was sent: one statement. */
export async function insertReminderNotifications(db: Executor, items: ReminderNotification[]): Promise<number> {
  if (items.length === 0) return 0;
  const rows = await queryRows<{ n: number }>(
    db,
    sql`${tag('reminders:notifications')}
    with ins as (
      insert into notifications (${NOTIFICATION_COLUMNS})
      select r.company_id, u.id, 'APPOINTMENT_REMINDER'::notificationtype, i.title, i.message, i.link_url, i.link_text,
             'appointment', r.appointment_id, i.dedupe_key
      from jsonb_to_recordset(${JSON.stringify(items)}::jsonb)
           as i(reminder_id int, title text, message text, link_url text, link_text text, dedupe_key text)
      join appointment_reminders r on r.id = i.reminder_id and r.delivery = 'sent'
      join appointments a on a.id = r.appointment_id
      left join users u on u.id = a.employee_id and u.company_id = a.company_id and u.is_active
      order by r.company_id, r.appointment_id, i.dedupe_key
      on conflict do nothing
      returning 1)
    select count(*)::int as n from ins`,
  );
  return rows[0]?.n ?? 0;
}
