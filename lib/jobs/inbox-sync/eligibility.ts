/**
 * Which mailboxes inbox-sync looks after, defined once (docs/inbox-sync.md, "Which mailboxes"):
 * the run's selection and claim, the fan-out's due count, the freshness of /cron/status, its
 * attention sections and the console's list all read these conditions.
 */
import { sql, type SQL } from 'drizzle-orm';
import { NEEDS_REAUTH } from '../../oauth/grant.js';

/** Too many refused logins in a row: waits for a new password (docs/inbox-sync.md). */
export const PAUSED = 'paused';

/**
 * The statuses only the company can end (a new password, a new OAuth grant): such a mailbox is
 * neither synced, nor due, nor stale; it is shown as attention with its reason (`last_sync_error`).
 */
export const WAITING_FOR_COMPANY: readonly string[] = [PAUSED, NEEDS_REAUTH];

const statusList = (statuses: readonly string[]) =>
  sql.join(
    statuses.map((s) => sql`${s}`),
    sql`, `,
  );

/** In service: an active IMAP mailbox of an active company (`alias` names inbox_integrations). */
export function mailboxInService(alias = 'i'): SQL {
  const i = sql.identifier(alias);
  return sql`(${i}.integration_type = 'imap' and ${i}.is_active
    and exists (select 1 from companies sc where sc.id = ${i}.company_id and sc.is_active))`;
}

/** A status only the company can end (WAITING_FOR_COMPANY). */
export function waitingForCompany(alias = 'i'): SQL {
  return sql`${sql.identifier(alias)}.last_sync_status in (${statusList(WAITING_FOR_COMPANY)})`;
}

/** Eligible: in service, and not waiting for its company. What the run syncs and freshness measures. */
export function mailboxEligible(alias = 'i'): SQL {
  const i = sql.identifier(alias);
  return sql`(${mailboxInService(alias)} and (${i}.last_sync_status is null or ${i}.last_sync_status not in (${statusList(WAITING_FOR_COMPANY)})))`;
}

/** Eligible and due now (no back-off pending): the run's selection and the fan-out's count. */
export function mailboxDue(now: Date, alias = 'i'): SQL {
  const i = sql.identifier(alias);
  return sql`(${mailboxEligible(alias)} and (${i}.next_sync_at is null or ${i}.next_sync_at <= ${now}))`;
}
