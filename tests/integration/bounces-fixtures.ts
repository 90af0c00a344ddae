/** Shared by the bounce integration tests: one company = a client, a Dovecot mailbox, follow-ups. */
import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import type { Dovecot } from '../../devtools/dovecot.js';
import { createIntegration } from '../helpers/inbox-fixtures.js';
import { handContext, seedCompany, seedFollowup, seedInvoice, type SeedCompany } from './followups-fixtures.js';

export const NOW = new Date('2026-03-11T10:00:00Z');
export const FRONTEND = 'https://app.lokario.fr';

export type BounceTenant = SeedCompany & {
  email: string;
  clientName: string;
  box: { user: string; password: string };
  integrationId: number;
};

export async function tenant(db: Db, d: Dovecot, n: string): Promise<BounceTenant> {
  const email = `client.${n}@client-${n}.fr`;
  const clientName = `Client ${n}`;
  const s = await seedCompany(db, { clientEmail: email, clientName, name: `Société ${n}` });
  const box = d.takeMailbox();
  const integrationId = await createIntegration(db, s.companyId, d, box.user, box.password);
  return { ...s, email, clientName, box, integrationId };
}

/** A due follow-up of an unpaid invoice of the tenant's client. */
export async function dueFollowup(db: Db, s: SeedCompany) {
  return seedFollowup(db, s, { sourceId: await seedInvoice(db, s) });
}

/** One run of the followups job through the SMTP sink (its pooled connections closed afterwards). */
export async function runFollowups(db: Db, smtpUrl: string, now = NOW, companyId?: number) {
  const ctx = handContext(db, { SMTP_URL: smtpUrl, FRONTEND_URL: FRONTEND }, now, companyId ? { scope: { companyId } } : {});
  try {
    return await followupsJob.run(ctx);
  } finally {
    ctx.mail.closeAll();
  }
}

/** What the sent step looks like: its Message-ID (bare) and subject, as recorded. */
export async function sentStep(db: Db, followupId: number, step = 1) {
  const [r] = await queryRows<{ id: number; message_id: string; subject: string; delivery: string; error: string | null }>(
    db,
    sql`
    select h.id, trim(both '<>' from h.message_id) as message_id, m.external_metadata->>'subject' as subject, h.delivery::text, h.error
    from followup_history h left join inbox_messages m on m.company_id = h.company_id and m.external_id = trim(both '<>' from h.message_id)
    where h.followup_id = ${followupId} and h.step = ${step}`,
  );
  return r;
}

export async function followupState(db: Db, id: number) {
  const [r] = await queryRows<{
    status: string;
    hold_reason: string | null;
    client_away_until: string | null;
    client_away_note: string | null;
  }>(
    db,
    sql`
    select status::text, hold_reason, client_away_until::text, client_away_note from followups where id = ${id}`,
  );
  return r;
}

export async function bouncesOf(db: Db, companyId: number) {
  return queryRows<{
    outcome: string;
    send_kind: string | null;
    matched_by: string | null;
    recipient: string | null;
    status_code: string | null;
    severity: string | null;
  }>(
    db,
    sql`
    select outcome, send_kind, matched_by, recipient, status_code, severity from send_bounces where company_id = ${companyId} order by id`,
  );
}

export async function bounceNotifications(db: Db, companyId: number) {
  return queryRows<{ title: string; message: string; link_url: string; link_text: string; source_type: string; source_id: number }>(
    db,
    sql`
    select title, message, link_url, link_text, source_type, source_id from notifications where company_id = ${companyId} and type = 'EMAIL_BOUNCED' order by id`,
  );
}
