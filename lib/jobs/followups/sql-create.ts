/**
 * The create phase's statements: which invoices and quotes get a follow-up (docs/followups.md,
 * "Create"). Set-based: one statement for every company of the run.
 */
import { sql, type SQL } from 'drizzle-orm';
import { jsonb, queryRows, type Executor } from '../../../db/client.js';
import { scopeFilter } from '../../cron/scope.js';
import type { Scope } from '../../cron/types.js';
import type { AutoFollowupType } from './messages.js';
import { iso } from './sql.js';
import { openIssuedInvoice } from '../../billing/sql.js';

export type CreationConfig = { company_id: number; quotes: boolean; invoices: boolean; first_delay: number; tz: string };

/** Companies of the run's scope whose billing switch is on; only that switch matters, not the `followups` settings object. */
export async function loadCreationCompanies(db: Executor, scope: Scope) {
  return queryRows<{ company_id: number; settings: unknown }>(
    db,
    sql`
    select s.company_id, s.settings from company_settings s join companies c on c.id = s.company_id
    where c.is_active and ${scopeFilter(sql`s.company_id`, scope)}
      and ((s.settings #>> '{billing,auto_followups,invoices_enabled}') = 'true'
        or (s.settings #>> '{billing,auto_followups,quotes_enabled}') = 'true')`,
  );
}

export type CandidateRow = {
  company_id: number;
  client_id: number;
  type: AutoFollowupType;
  source_type: 'invoice' | 'quote';
  source_id: number;
  source_label: string;
  due_date: Date | string;
  amount: string;
};

function candidatesCte(cfg: CreationConfig[], now: Date): SQL {
  // step 1 is due first_delay calendar days after the anchor, in the company's zone (once: docs/followups.md)
  return sql`
    cfg as (select * from jsonb_to_recordset(${jsonb(cfg)}) as c(company_id int, quotes bool, invoices bool, first_delay int, tz text)),
    candidates as (
      select i.company_id, i.client_id, 'FACTURE_IMPAYEE'::followuptype as type, 'invoice'::text as source_type, i.id as source_id,
             'Facture ' || i.number as source_label,
             ((coalesce(i.due_date, i.sent_at) at time zone c.tz) + make_interval(days => c.first_delay)) at time zone c.tz as due_date,
             i.total_ttc as amount
      from invoices i join cfg c on c.company_id = i.company_id and c.invoices
      where ${openIssuedInvoice('i')} and i.client_id is not null
        and coalesce(i.due_date, i.sent_at) is not null
        and not exists (select 1 from followup_creations fc where fc.company_id = i.company_id and fc.source_type = 'invoice'
                        and fc.source_id = i.id and fc.type = 'FACTURE_IMPAYEE')
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
 * back), then insert the follow-up; both ON CONFLICT DO NOTHING.
 */
export async function createFollowups(db: Executor, cfg: CreationConfig[], now: Date) {
  if (!cfg.length) return [];
  return queryRows<{ type: AutoFollowupType; n: number }>(
    db,
    sql`
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
    select type, count(*)::int as n from ins group by type`,
  );
}

/** Dry run: what the create phase would insert, written nowhere. */
export async function previewCreations(db: Executor, cfg: CreationConfig[], now: Date) {
  if (!cfg.length) return [];
  return queryRows<CandidateRow>(
    db,
    sql`
    with ${candidatesCte(cfg, now)}
    select c.* from candidates c
    where not exists (select 1 from followups f where f.company_id = c.company_id and f.source_type = c.source_type
                      and f.source_id = c.source_id and f.type = c.type)`,
  );
}
