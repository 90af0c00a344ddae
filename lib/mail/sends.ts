/**
 * Every table that carries send claims, declared once (docs/sending.md, "The senders"): its kind
 * (the one name the console, `npm run ops`, the bounces and `send_bounces.send_kind` use), how a
 * claim is given back and settled, the protocol's failure policy, how the console lists its
 * `unknown` sends and how a bounce finds its sends. The protocol itself is claimed-send.ts; a
 * new sender adds its entry here and nowhere else.
 */
import { sql, type SQL } from 'drizzle-orm';
import { RECORDED_BY_SENDER, RELEASE_ON_RETRY, type ClaimTable, type FailurePolicy } from './claimed-send.js';
import { SEND_TEXTS } from './messages.js';

/** The `mail_sends` kinds of the account-deletion emails (the key is `<kind>:<user or log id>`). */
export const REMINDER_KIND = 'deletion-reminder';
export const CONFIRMATION_KIND = 'account-deleted';

export type SendKind = 'followup_step' | 'appointment_reminder' | 'deletion_email';

/**
 * One sender's table. The views are SELECTs on the table under `alias`, each taking a condition
 * on that alias's columns.
 */
export type SendTable = ClaimTable & {
  kind: SendKind;
  alias: string;
  policy: FailurePolicy;
  /** The console's list: `kind, id, company_name, recipient, subject, at, error`. */
  consoleView: (where: SQL) => SQL;
  /** What a bounce needs of a send (lib/bounces/sql.ts `candidateSends`), and the columns it matches on. */
  bounceView: {
    select: (where: SQL) => SQL;
    messageId: SQL;
    companyId: SQL;
    sentAt: SQL;
    /** Lower-cased, trimmed: the address the send went to as known now. */
    recipient: SQL;
  };
};

/**
 * Follow-up steps (`followup_history`). Given back: a first try that never reached SMTP leaves
 * nothing to keep (its row is deleted, the step is due again); any other row is history and
 * stays, as a failed try due again at once, the try given back not counted. A step declared not
 * delivered by a person also lets its follow-up (held for the unknown step) go on; declared
 * delivered, the follow-up goes on to its next step.
 */
/** A follow-up on hold for a step whose delivery is unknown (not one held after a bounce: its address is the problem). */
const heldForUnknownStep = sql`status = 'EN_ATTENTE' and hold_reason is distinct from 'bounced'`;

export const FOLLOWUP_SENDS: SendTable = {
  kind: 'followup_step',
  name: 'followup_history',
  alias: 'h',
  // a refused try is recorded `failed` with its back-off (lib/jobs/followups/plan.ts), not simply given back
  policy: RECORDED_BY_SENDER,
  release: (where) => [
    sql`update followups set status = 'A_FAIRE', updated_at = now()
        where id in (select followup_id from followup_history where (${where}) and delivery = 'unknown') and ${heldForUnknownStep}`,
    sql`delete from followup_history where (${where}) and attempts <= 1 and handed_at is null`,
    sql`update followup_history set delivery = 'failed', attempts = greatest(attempts - 1, 0), next_attempt_at = null, claimed_by = null
        where ${where}`,
  ],
  resolve: (where) => [
    sql`update followups set status = 'A_FAIRE', updated_at = now()
        where id in (select followup_id from followup_history where ${where}) and ${heldForUnknownStep}`,
    sql`update followup_history set delivery = 'sent', error = null, next_attempt_at = null where ${where}`,
  ],
  consoleView: (where) => sql`
    select 'followup_step' as kind, h.id, co.name as company_name, cl.email as recipient,
           format(${SEND_TEXTS.console.followupStep}::text, coalesce(h.step::text, '?'), f.source_label) as subject,
           coalesce(h.claimed_at, h.sent_at) as at, h.error
    from followup_history h join followups f on f.id = h.followup_id
    left join clients cl on cl.id = f.client_id left join companies co on co.id = h.company_id
    where ${where}`,
  bounceView: {
    select: (where) => sql`
      select 'followup_step' as kind, h.id, h.company_id, trim(both '<>' from h.message_id) as message_id, lower(trim(c.email)) as recipient,
             om.external_metadata->>'subject' as subject, h.sent_at::text as sent_at, f.client_id, c.name as client_name, f.id as followup_id,
             format(${SEND_TEXTS.bounce.followupStep}::text, h.step, f.source_label) as label
      from followup_history h join followups f on f.id = h.followup_id left join clients c on c.id = f.client_id
      left join inbox_messages om on om.company_id = h.company_id and om.external_id = trim(both '<>' from h.message_id)
      where ${where}`,
    messageId: sql`h.message_id`,
    companyId: sql`h.company_id`,
    sentAt: sql`h.sent_at`,
    recipient: sql`lower(trim(c.email))`,
  },
};

/** Appointment reminders (`appointment_reminders`): the row is the claim; given back = deleted, so a later run claims it again while the appointment is ahead. */
export const REMINDER_SENDS: SendTable = {
  kind: 'appointment_reminder',
  name: 'appointment_reminders',
  alias: 'r',
  // SMTP not configured yet is ours to fix, not the address's: given back like a 4xx
  policy: { onRetry: 'release', releaseCodes: ['smtp_not_configured'] },
  consoleView: (where) => sql`
    select 'appointment_reminder' as kind, r.id, co.name as company_name, cl.email as recipient,
           format(${SEND_TEXTS.console.appointmentReminder}::text, coalesce(ty.name, ${SEND_TEXTS.console.appointmentFallback}::text), r.hours_before) as subject,
           r.claimed_at as at, r.error
    from appointment_reminders r join appointments a on a.id = r.appointment_id
    left join clients cl on cl.id = a.client_id left join appointment_types ty on ty.id = a.type_id
    left join companies co on co.id = r.company_id
    where ${where}`,
  bounceView: {
    select: (where) => sql`
      select 'appointment_reminder' as kind, r.id, r.company_id, trim(both '<>' from r.message_id) as message_id, lower(trim(c.email)) as recipient,
             null as subject, r.sent_at::text as sent_at, a.client_id, c.name as client_name, null::int as followup_id,
             format(${SEND_TEXTS.bounce.appointmentReminder}::text, to_char(r.start_date_time at time zone 'Europe/Paris', 'DD/MM/YYYY')) as label
      from appointment_reminders r join appointments a on a.id = r.appointment_id left join clients c on c.id = a.client_id
      where ${where}`,
    messageId: sql`r.message_id`,
    companyId: sql`r.company_id`,
    sentAt: sql`r.sent_at`,
    recipient: sql`lower(trim(c.email))`,
  },
};

/** The deletion emails' rows of the shared `mail_sends` (`kind` is the table's column). */
const deletionRows = (kind: SQL) => sql`${kind} in (${REMINDER_KIND}, ${CONFIRMATION_KIND})`;
/** The user a deletion email's key names (`<kind>:<user id>`; a confirmation's is a log id and finds no user). */
const keyUser = sql`split_part(m.key, ':', 2) ~ '^[0-9]{1,9}$' and u.id = split_part(m.key, ':', 2)::int`;

/**
 * Account-deletion emails (`mail_sends`, kinds REMINDER_KIND and CONFIRMATION_KIND). Giving a
 * reminder's claim back also clears the user's `deletion_reminder_sent_at`, so that the next run
 * claims it again; a confirmation has nothing to give back to (the account is gone), its row is
 * simply deleted. They keep no address (the account is being erased): the console shows the key.
 */
export const DELETION_EMAIL_SENDS: SendTable = {
  kind: 'deletion_email',
  name: 'mail_sends',
  alias: 'm',
  rows: deletionRows(sql`kind`),
  // a 4xx reminder is given back: a rare duplicate reminder beats none before an irreversible deletion
  policy: RELEASE_ON_RETRY,
  release: (where) => [
    sql`update users set deletion_reminder_sent_at = null
        where id in (select split_part(key, ':', 2)::int from mail_sends where (${where}) and kind = ${REMINDER_KIND})`,
    sql`delete from mail_sends where ${where}`,
  ],
  consoleView: (where) => sql`
    select 'deletion_email' as kind, m.id, null as company_name, null as recipient,
           format(case when m.kind = ${REMINDER_KIND} then ${SEND_TEXTS.console.deletionReminder}::text
                       else ${SEND_TEXTS.console.deletionConfirmation}::text end, m.key) as subject,
           m.claimed_at as at, m.error
    from mail_sends m
    where ${deletionRows(sql`m.kind`)} and (${where})`,
  bounceView: {
    select: (where) => sql`
      select 'deletion_email' as kind, m.id, u.company_id, trim(both '<>' from m.message_id) as message_id, lower(u.email) as recipient,
             null as subject, m.sent_at::text as sent_at, null::int as client_id, null as client_name, null::int as followup_id,
             ${SEND_TEXTS.bounce.deletionEmail}::text as label
      from mail_sends m left join users u on ${keyUser}
      where ${deletionRows(sql`m.kind`)} and (${where})`,
    messageId: sql`m.message_id`,
    companyId: sql`u.company_id`,
    sentAt: sql`m.sent_at`,
    recipient: sql`lower(u.email)`,
  },
};

/** Every sender, in the order the console lists them. */
export const SEND_TABLES: readonly SendTable[] = [FOLLOWUP_SENDS, REMINDER_SENDS, DELETION_EMAIL_SENDS];

export const SEND_KINDS: readonly SendKind[] = SEND_TABLES.map((t) => t.kind);

export function sendTableOf(kind: string): SendTable | undefined {
  return SEND_TABLES.find((t) => t.kind === kind);
}
