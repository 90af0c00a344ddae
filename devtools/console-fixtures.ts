import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../db/client.js';
import { JOB_REGISTRY } from '../lib/jobs/registry.js';
import { previousOccurrences } from '../lib/cron/schedule.js';

/** Seeds for the operator's console tests (browser, CLI) and the README screenshots. */

/** Scheduled, successful runs of every job over the last `days`, at each occurrence of its schedule. */
export async function seedHealthyRuns(db: Db, now: Date, days = 7, opts: { failEvery?: number } = {}): Promise<void> {
  for (const { id: job, schedule } of JOB_REGISTRY.jobs) {
    const count = Math.min(2_016, Math.round((days * 86_400_000) / intervalOf(schedule, now)));
    const at = previousOccurrences(schedule, now, count);
    const rows = at.map((d, i) => {
      const failed = opts.failEvery ? i % opts.failEvery === 3 : false;
      const ms = 200 + ((i * 7919) % 4000);
      return {
        id: `${job}-${d.getTime()}`,
        job,
        started: d.toISOString(),
        finished: new Date(d.getTime() + ms).toISOString(),
        outcome: failed ? 'failed' : 'succeeded',
        error: failed ? 'database_error: connexion perdue' : null,
      };
    });
    await db.execute(sql`
      insert into cron_runs (id, job, trigger, started_at, finished_at, outcome, dry_run, error)
      select r.id, r.job, 'vercel-cron', r.started, r.finished, r.outcome::cron_run_outcome, false, r.error
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as r(id text, job text, started timestamptz, finished timestamptz, outcome text, error text)
      on conflict do nothing`);
  }
}

function intervalOf(schedule: string, now: Date): number {
  const [a, b] = previousOccurrences(schedule, now, 2);
  return a.getTime() - b.getTime();
}

export async function seedCompany(db: Db, name = 'Plomberie Martin'): Promise<number> {
  const [row] = await queryRows<{ id: number }>(
    db,
    sql`
    insert into companies (code, name) values (${`C${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`}, ${name}) returning id`,
  );
  await db.execute(sql`insert into company_settings (company_id, settings) values (${row.id}, '{}'::jsonb)`);
  return row.id;
}

/** A follow-up whose step 1 is `unknown` (its invocation died mid-send), on hold EN_ATTENTE. */
export async function seedUnknownFollowup(
  db: Db,
  companyId: number,
  label: string,
  email = 'client@exemple.fr',
): Promise<{ historyId: number; followupId: number }> {
  const [client] = await queryRows<{ id: number }>(
    db,
    sql`insert into clients (company_id, name, email) values (${companyId}, 'Client Dupont', ${email}) returning id`,
  );
  const [f] = await queryRows<{ id: number }>(
    db,
    sql`
    insert into followups (company_id, client_id, type, source_type, source_id, source_label, due_date, status, auto_enabled)
    values (${companyId}, ${client.id}, 'FACTURE_IMPAYEE', 'manual', null, ${label}, now() - interval '1 day', 'EN_ATTENTE', true) returning id`,
  );
  const [h] = await queryRows<{ id: number }>(
    db,
    sql`
    insert into followup_history (followup_id, company_id, message, step, delivery, claimed_at, sent_at, error)
    values (${f.id}, ${companyId}, 'Bonjour, petit rappel…', 1, 'unknown', now() - interval '2 hours', now() - interval '2 hours',
            'no SMTP answer recorded: the invocation that was sending ended') returning id`,
  );
  return { historyId: Number(h.id), followupId: Number(f.id) };
}

/** An appointment reminder left `unknown`. */
export async function seedUnknownReminder(db: Db, companyId: number, typeName = 'Visite technique'): Promise<number> {
  const [client] = await queryRows<{ id: number }>(
    db,
    sql`insert into clients (company_id, name, email) values (${companyId}, 'Mme Leroy', 'leroy@exemple.fr') returning id`,
  );
  const [ty] = await queryRows<{ id: number }>(
    db,
    sql`insert into appointment_types (company_id, name) values (${companyId}, ${typeName}) returning id`,
  );
  const [a] = await queryRows<{ id: number }>(
    db,
    sql`
    insert into appointments (company_id, client_id, type_id, start_date_time) values (${companyId}, ${client.id}, ${ty.id}, now() + interval '20 hours') returning id`,
  );
  const [r] = await queryRows<{ id: number }>(
    db,
    sql`
    insert into appointment_reminders (company_id, appointment_id, hours_before, start_date_time, claimed_at, delivery, error)
    values (${companyId}, ${a.id}, 24, now() + interval '20 hours', now() - interval '3 hours', 'unknown', 'no answer recorded before the claim expired') returning id`,
  );
  return Number(r.id);
}

/** Marks an integration paused after repeated refused logins (as inbox-sync leaves it). */
export async function pauseIntegration(db: Db, id: number, error = 'Identifiants refusés par le serveur IMAP'): Promise<void> {
  await db.execute(sql`update inbox_integrations set last_sync_status = 'paused', consecutive_failures = 5, last_sync_error = ${error},
    next_sync_at = now() + interval '6 hours', last_sync_at = now() - interval '2 days' where id = ${id}`);
}
