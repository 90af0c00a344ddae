/**
 * Benchmark: delete a large company (5,000 invoices with lines and payments, 2,000 clients,
 * 20,000 inbox messages) on real PostgreSQL, through the job, against a raw baseline measured in
 * the same run: the same deletes hand-written in one transaction on one connection. Also the
 * original's row-by-row approach, on a tenth of the data (it does not finish in reasonable time
 * on the full tenant).
 *
 *   npx tsx bench/deletions.ts            (TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres)
 */
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import * as schema from '../db/schema/index.js';
import { MIGRATIONS_DIR, type Db } from '../db/client.js';
import { parseConfig } from '../lib/config.js';
import { createLogger } from '../lib/log.js';
import { createMailFactory } from '../lib/mail/transport.js';
import { accountDeletionsJob } from '../lib/jobs/account-deletions/index.js';

const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const ROUNDS = 3;
const NOW = new Date();

type Size = { invoices: number; clients: number; messages: number; linesPerInvoice: number };
const FULL: Size = { invoices: 5_000, clients: 2_000, messages: 20_000, linesPerInvoice: 3 };
const TENTH: Size = { invoices: 500, clients: 200, messages: 2_000, linesPerInvoice: 3 };
const TINY: Size = { invoices: 1, clients: 1, messages: 1, linesPerInvoice: 1 };

const urlFor = (db: string) => {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${db}`;
  return u.toString();
};

async function admin(text: string) {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

/** One tenant whose only user's deletion is due, seeded set-based with generate_series. */
async function seed(c: pg.Client, size: Size): Promise<number> {
  const tag = randomUUID();
  const {
    rows: [{ id }],
  } = await c.query(`insert into companies (name, code) values ('Bench', $1) returning id`, [tag]);
  const q = (text: string) => c.query(text.replaceAll(':c', String(id)));
  await c.query(
    `insert into users (email, company_id, role, deletion_requested_at, deletion_scheduled_at)
    values ($1, $2, 'owner', now() - interval '31 days', now() - interval '1 day')`,
    [`bench-${tag}@example.fr`, id],
  );
  await q(`insert into company_settings (company_id, settings) values (:c, '{"company_info":{"timezone":"Europe/Paris"}}')`);
  await q(`insert into subscriptions (company_id) values (:c)`);
  await q(`insert into inbox_integrations (company_id, name, email_password) values (:c, 'Boîte', 'gAAAAAtoken')`);
  await q(
    `insert into inbox_poison_messages (company_id, integration_id, uid_validity, uid, error) select :c, id, 1, 1, 'x' from inbox_integrations where company_id = :c`,
  );
  await q(
    `insert into clients (company_id, name, email) select :c, 'Client ' || g, 'client' || g || '@example.fr' from generate_series(1, ${size.clients}) g`,
  );
  const clientIds = `(select array_agg(id order by id) from clients where company_id = :c)`;
  await q(`insert into invoices (company_id, client_id, number, status, issue_date, total_ttc, client_name, seller_name, notes)
    select :c, (${clientIds})[1 + g % ${size.clients}], 'F-' || g, (case when g % 10 = 0 then 'BROUILLON' else 'PAYEE' end)::invoicestatus,
      now() - g * interval '1 hour', 100, 'Client', 'Bench', 'note privée'
    from generate_series(1, ${size.invoices}) g`);
  await q(
    `insert into invoice_lines (invoice_id, description, total_ttc) select i.id, 'Ligne ' || n, 33 from invoices i, generate_series(1, ${size.linesPerInvoice}) n where i.company_id = :c`,
  );
  await q(`insert into invoice_payments (invoice_id, amount) select id, 50 from invoices where company_id = :c`);
  await q(
    `insert into quotes (company_id, client_id, number) select :c, (${clientIds})[1 + g % ${size.clients}], 'D-' || g from generate_series(1, ${Math.max(1, size.invoices / 5)}) g`,
  );
  await q(`insert into conversations (company_id, client_id, subject) select :c, id, 'Sujet' from clients where company_id = :c`);
  const convIds = `(select array_agg(id order by id) from conversations where company_id = :c)`;
  await q(`insert into inbox_messages (company_id, conversation_id, from_name, content, external_id)
    select :c, (${convIds})[1 + g % ${size.clients}], 'Expéditeur', repeat('Bonjour, voici ma demande. ', 20), 'msg-' || g || '@bench'
    from generate_series(1, ${size.messages}) g`);
  await q(
    `insert into message_attachments (message_id, name, content) select id, 'piece.pdf', decode(repeat('00', 512), 'hex') from inbox_messages where company_id = :c and id % 10 = 0`,
  );
  await q(`insert into followups (company_id, client_id, type, source_type, source_id, source_label, due_date)
    select :c, (${clientIds})[1 + g % ${size.clients}], 'FACTURE_IMPAYEE', 'invoice', g, 'Facture', now() from generate_series(1, ${Math.max(1, size.invoices / 10)}) g`);
  await q(
    `insert into followup_history (followup_id, company_id, message, step) select id, :c, 'Relance', 1 from followups where company_id = :c`,
  );
  await q(
    `insert into tasks (company_id, title, assigned_to_id) select :c, 'Tâche ' || g, (select id from users where company_id = :c) from generate_series(1, ${Math.max(1, size.invoices / 10)}) g`,
  );
  await q(
    `insert into notifications (company_id, type, title, message, source_id) select :c, 'TASK_OVERDUE', 't', 'm', g from generate_series(1, ${Math.max(1, size.invoices / 10)}) g`,
  );
  await q(`insert into appointment_types (company_id, name) values (:c, 'RDV')`);
  await q(`insert into appointments (company_id, client_id, type_id, start_date_time)
    select :c, (${clientIds})[1 + g % ${size.clients}], (select id from appointment_types where company_id = :c), now() + g * interval '1 day' from generate_series(1, ${Math.max(1, size.invoices / 10)}) g`);
  await q(
    `insert into appointment_reminders (company_id, appointment_id, hours_before, start_date_time) select :c, id, 24, start_date_time from appointments where company_id = :c`,
  );
  await c.query('analyze');
  return id;
}

/** The job, on a drizzle database that counts every statement it sends. */
async function runJobOnce(url: string): Promise<{ ms: number; statements: number; rowsDeleted: number }> {
  let statements = 0;
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const db = drizzle({
    client: pool,
    schema,
    logger: {
      logQuery: () => {
        statements++;
      },
    },
  }) as unknown as Db;
  const config = parseConfig({ NODE_ENV: 'development', OUTBOX_DIR: path.join(os.tmpdir(), 'lokario-bench-outbox') });
  const mail = createMailFactory(config);
  const t0 = performance.now();
  const res = await accountDeletionsJob.run({
    db,
    now: NOW,
    deadline: Date.now() + 600_000,
    dryRun: false,
    scope: {},
    log: createLogger({ level: 'silent' }),
    mail,
    config,
    runId: randomUUID(),
    trigger: 'cli',
  });
  const ms = performance.now() - t0;
  mail.closeAll();
  await pool.end();
  if (res.stats.deletedCompanies !== 1)
    throw new Error(`bench: the company was not deleted: ${JSON.stringify(res.stats)} ${JSON.stringify(res.errors)}`);
  const rowsDeleted = Object.values(res.stats.rowsDeleted as Record<string, number>).reduce((a, b) => a + b, 0);
  return { ms, statements, rowsDeleted };
}

/** Raw baseline: the same deletes, hand-written, one transaction, one connection, no counting, no log. */
const RAW = [
  `delete from message_attachments where message_id in (select id from inbox_messages where company_id = $1)`,
  `delete from inbox_messages where company_id = $1`,
  `delete from inbox_poison_messages where company_id = $1`,
  `delete from followup_history where company_id = $1`,
  `delete from followups where company_id = $1`,
  `delete from conversations where company_id = $1`,
  `delete from inbox_integrations where company_id = $1`,
  `delete from notifications where company_id = $1`,
  `delete from appointment_reminders where company_id = $1`,
  `delete from appointments where company_id = $1`,
  `delete from appointment_types where company_id = $1`,
  `delete from tasks where company_id = $1`,
  `delete from quotes where company_id = $1`,
  `delete from invoice_payments where invoice_id in (select id from invoices where company_id = $1 and status = 'BROUILLON')`,
  `delete from invoice_lines where invoice_id in (select id from invoices where company_id = $1 and status = 'BROUILLON')`,
  `delete from invoices where company_id = $1 and status = 'BROUILLON'`,
  `update invoices set company_id = null, client_id = null, notes = null, retained_until = issue_date + interval '10 years' where company_id = $1`,
  `delete from clients where company_id = $1`,
  `delete from subscriptions where company_id = $1`,
  `delete from company_settings where company_id = $1`,
  `delete from users where company_id = $1`,
  `delete from companies where id = $1`,
];

async function runRawOnce(c: pg.Client, companyId: number): Promise<{ ms: number; statements: number }> {
  const t0 = performance.now();
  await c.query('begin');
  for (const s of RAW) await c.query(s, [companyId]);
  await c.query('commit');
  return { ms: performance.now() - t0, statements: RAW.length + 2 };
}

/** The original's approach: one statement per row (on a tenth of the data). */
async function runRowByRowOnce(c: pg.Client, companyId: number): Promise<{ ms: number; statements: number }> {
  let statements = 0;
  const t0 = performance.now();
  const exec = async (text: string, params: unknown[] = []) => {
    statements++;
    return c.query(text, params);
  };
  await exec('begin');
  const byParent: [string, string, string][] = [
    ['message_attachments', 'message_id', 'inbox_messages'],
    ['invoice_payments', 'invoice_id', 'invoices'],
    ['invoice_lines', 'invoice_id', 'invoices'],
  ];
  for (const table of RAW.map((s) => /^(?:delete from|update) (\w+)/.exec(s)![1])) {
    const parent = byParent.find(([t]) => t === table);
    const ids = parent
      ? (await exec(`select id from ${table} where ${parent[1]} in (select id from ${parent[2]} where company_id = $1)`, [companyId])).rows
      : (await exec(`select id from ${table} where ${table === 'companies' ? 'id' : 'company_id'} = $1`, [companyId])).rows;
    for (const { id } of ids) {
      if (table === 'invoices') await exec(`update invoices set company_id = null, client_id = null, notes = null where id = $1`, [id]);
      else await exec(`delete from ${table} where id = $1`, [id]);
    }
  }
  await exec('commit');
  return { ms: performance.now() - t0, statements };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const name = `lokario_bench_deletions_${process.pid}`;
  await admin(`create database "${name}"`);
  const url = urlFor(name);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const mpool = new pg.Pool({ connectionString: url, max: 1 });
    await migrate(drizzle({ client: mpool }), { migrationsFolder: MIGRATIONS_DIR });
    await mpool.end();

    const tinyId = await seed(c, TINY);
    const tiny = await runJobOnce(url);
    void tinyId;

    const job: { ms: number; statements: number; rowsDeleted: number }[] = [];
    const raw: { ms: number; statements: number }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now();
      await seed(c, FULL);
      const seedMs = performance.now() - t0;
      job.push(await runJobOnce(url));
      const rawId = await seed(c, FULL);
      await c.query(`update users set deletion_requested_at = null where company_id = $1`, [rawId]); // not for the job
      raw.push(await runRawOnce(c, rawId));
      console.log(
        `round ${r + 1}: seed ${seedMs.toFixed(0)} ms, job ${job[r].ms.toFixed(0)} ms (${job[r].statements} statements, ${job[r].rowsDeleted} rows), raw ${raw[r].ms.toFixed(0)} ms`,
      );
    }
    const rowId = await seed(c, TENTH);
    const row = await runRowByRowOnce(c, rowId);
    const tenthId = await seed(c, TENTH);
    await c.query(`update users set deletion_requested_at = null where company_id = $1`, [tenthId]);
    const rawTenth = await runRawOnce(c, tenthId);

    const jobMs = median(job.map((j) => j.ms));
    const rawMs = median(raw.map((j) => j.ms));
    console.log('');
    console.log(
      `tenant: ${FULL.invoices} invoices (${FULL.invoices * FULL.linesPerInvoice} lines, ${FULL.invoices} payments), ${FULL.clients} clients, ${FULL.messages} inbox messages; ${job[0].rowsDeleted} rows deleted`,
    );
    console.log(
      `job (whole account deletion, pg driver):    median ${jobMs.toFixed(0)} ms over ${ROUNDS} rounds, ${job[0].statements} statements`,
    );
    console.log(`raw baseline (same deletes, hand-written):  median ${rawMs.toFixed(0)} ms, ${raw[0].statements} statements`);
    console.log(`ratio job / raw:                            ${(jobMs / rawMs).toFixed(2)}x`);
    console.log(
      `statements for a 1-row-per-table tenant:    ${tiny.statements} (full tenant: ${job[0].statements}) -> grow with tables, not rows`,
    );
    console.log(
      `row-by-row (the original), 1/10 tenant:     ${row.ms.toFixed(0)} ms, ${row.statements} statements; raw set-based on the same: ${rawTenth.ms.toFixed(0)} ms -> ${(row.ms / rawTenth.ms).toFixed(1)}x slower`,
    );
  } finally {
    await c.end();
    await admin(`drop database if exists "${name}" with (force)`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
