import { sql } from 'drizzle-orm';
import { randomUUID } from 'node:crypto';
import { queryRows, type Db } from '../../db/client.js';
import { parseConfig, type Config } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import { createMailFactory } from '../../lib/mail/transport.js';
import type { JobContext, Scope } from '../../lib/cron/types.js';
import { insertClient, insertCompany, insertCompanySettings, insertUser } from '../helpers/seed.js';

/** Seeding helpers for the overdue-reminders integration tests (plain SQL on the real server). */

let seq = 0;
const uniq = () => `${process.pid}${Date.now().toString(36)}${++seq}`;

export async function one<T>(db: Db, q: ReturnType<typeof sql>): Promise<T> {
  return (await queryRows<T>(db, q))[0];
}

export async function company(db: Db, opts: { name?: string; settings?: unknown; active?: boolean } = {}): Promise<number> {
  const id = await insertCompany(db, { name: opts.name ?? 'Atelier Dupont', isActive: opts.active ?? true });
  if (opts.settings !== undefined) await insertCompanySettings(db, id, opts.settings);
  return id;
}

export async function user(db: Db, companyId: number, opts: { active?: boolean } = {}): Promise<number> {
  return insertUser(db, {
    email: `u${uniq()}@example.com`,
    fullName: 'Marie Curie',
    role: 'user',
    companyId,
    isActive: opts.active ?? true,
  });
}

export async function client(
  db: Db,
  companyId: number,
  email: string | null = `client${uniq()}@example.com`,
  name = 'Jean Martin',
): Promise<number> {
  return insertClient(db, companyId, { name, email });
}

export type InvoiceOpts = {
  due: string | null;
  status?: string;
  type?: string;
  total?: string;
  deleted?: boolean;
  archived?: boolean;
  number?: string;
};
export async function invoice(db: Db, companyId: number, o: InvoiceOpts): Promise<number> {
  const r = await one<{ id: number }>(
    db,
    sql`insert into invoices (company_id, number, invoice_type, status, due_date, total_ttc, deleted_at, archived_at)
    values (${companyId}, ${o.number ?? `F-${uniq()}`}, ${o.type ?? 'FACTURE'}::invoicetype, ${o.status ?? 'ENVOYEE'}::invoicestatus,
      ${o.due}::timestamptz, ${o.total ?? '120.00'}, ${o.deleted ? sql`now()` : sql`null`}, ${o.archived ? sql`now()` : sql`null`})
    returning id`,
  );
  return r.id;
}

export async function payment(db: Db, invoiceId: number, amount: string) {
  await db.execute(sql`insert into invoice_payments (invoice_id, amount) values (${invoiceId}, ${amount})`);
}

export async function task(
  db: Db,
  companyId: number,
  o: { due: string | null; status?: string; priority?: string; assignee?: number | null; title?: string },
): Promise<number> {
  const r = await one<{ id: number }>(
    db,
    sql`insert into tasks (company_id, title, assigned_to_id, status, priority, due_date)
    values (${companyId}, ${o.title ?? 'Préparer le devis'}, ${o.assignee ?? null}, ${o.status ?? 'A_FAIRE'}::taskstatus, ${o.priority ?? 'normal'}, ${o.due}::timestamptz)
    returning id`,
  );
  return r.id;
}

export async function appointmentType(db: Db, companyId: number, name = 'Consultation'): Promise<number> {
  const r = await one<{ id: number }>(
    db,
    sql`insert into appointment_types (company_id, name) values (${companyId}, ${name}) returning id`,
  );
  return r.id;
}

export async function appointment(
  db: Db,
  o: { companyId: number; clientId: number; typeId: number; start: string; employeeId?: number | null; status?: string },
): Promise<number> {
  const r = await one<{ id: number }>(
    db,
    sql`insert into appointments (company_id, client_id, type_id, employee_id, start_date_time, status)
    values (${o.companyId}, ${o.clientId}, ${o.typeId}, ${o.employeeId ?? null}, ${o.start}::timestamptz, ${o.status ?? 'SCHEDULED'}::appointmentstatus)
    returning id`,
  );
  return r.id;
}

export async function subscription(db: Db, companyId: number, o: { status?: string; trialEnd: string | null; stripeId?: string | null }) {
  await db.execute(sql`insert into subscriptions (company_id, status, trial_end, stripe_subscription_id)
    values (${companyId}, ${o.status ?? 'TRIALING'}::subscriptionstatus, ${o.trialEnd}::timestamptz, ${o.stripeId ?? null})`);
}

export type NotificationRow = {
  id: number;
  company_id: number;
  user_id: number | null;
  type: string;
  title: string;
  message: string;
  link_url: string | null;
  link_text: string | null;
  source_type: string;
  source_id: number;
  dedupe_key: string;
};

export async function notificationsOf(db: Db, companyId: number, type?: string): Promise<NotificationRow[]> {
  return queryRows<NotificationRow>(
    db,
    sql`select id, company_id, user_id, type::text as type, title, message, link_url, link_text, source_type, source_id, dedupe_key
    from notifications where company_id = ${companyId} ${type ? sql`and type = ${type}::notificationtype` : sql``} order by id`,
  );
}

export function testConfig(env: Record<string, string> = {}): Config {
  return parseConfig({ NODE_ENV: 'test', CRON_SECRET: 'x'.repeat(24), FRONTEND_URL: 'https://app.lokario.fr', ...env });
}

/** A JobContext built by hand: the job function without runJob's lease (proves idempotency beyond it). */
export function handContext(
  db: Db,
  o: { now: Date; scope?: Scope; dryRun?: boolean; config: Config; deadlineMs?: number },
): JobContext & { close(): void } {
  const mail = createMailFactory(o.config);
  return {
    db,
    now: o.now,
    deadline: Date.now() + (o.deadlineMs ?? 120_000),
    dryRun: o.dryRun ?? false,
    scope: o.scope ?? {},
    log: createLogger({ level: 'silent' }),
    mail,
    config: o.config,
    runId: randomUUID(),
    trigger: 'http',
    close: () => mail.closeAll(),
  };
}

/** Paris local wall time → ISO instant, via Postgres itself (independent of the code under test). */
export async function parisInstant(db: Db, local: string, zone = 'Europe/Paris'): Promise<string> {
  const r = await one<{ t: string }>(
    db,
    sql`select to_char((${local}::timestamp at time zone ${zone}) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as t`,
  );
  return r.t;
}
