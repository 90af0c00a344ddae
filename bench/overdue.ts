/**
 * Benchmark of overdue-reminders on a real PostgreSQL (not part of the test suite).
 *
 *   npx tsx bench/overdue.ts            (TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres)
 *
 * Seeds 100 and then 10,000 overdue invoices + overdue tasks + due appointment reminders (reminders
 * capped at 500: SMTP throughput is not what is measured), runs the job twice (first run creates
 * everything, second finds everything already done) and prints, per run, the SQL statements the
 * driver saw (counted by wrapping the pg Pool's query) and the time. Baseline measured in the same
 * run: the original's approach for the invoice part (one SELECT + one INSERT per overdue invoice).
 * Goal: the notification statement count is identical at 100 and 10,000.
 */
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import * as schema from '../db/schema/index.js';
import { MIGRATIONS_DIR, type Db } from '../db/client.js';
import { parseConfig } from '../lib/config.js';
import { createLogger } from '../lib/log.js';
import { createMailFactory } from '../lib/mail/transport.js';
import { overdueRemindersJob } from '../lib/jobs/overdue-reminders/index.js';
import { startSmtpSink } from '../devtools/smtp.js';

const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SIZES = [100, 10_000];
const REMINDER_CAP = 500;
const COMPANIES = 20;
const NOW = new Date('2026-03-30T08:00:00Z');

type Counter = { total: number; byTag: Map<string, { n: number; ms: number }> };

function countingPool(url: string, counter: Counter): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  pool.on('error', () => {
    /* an idle connection ended by the final drop: nothing to do */
  });
  const original = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
  (pool as unknown as { query: unknown }).query = async (...args: unknown[]) => {
    const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string }).text ?? '');
    const tag = /\/\* overdue-reminders:([^ ]+) \*\//.exec(text)?.[1] ?? 'other';
    const t0 = performance.now();
    try {
      return await original(...args);
    } finally {
      const e = counter.byTag.get(tag) ?? { n: 0, ms: 0 };
      e.n++;
      e.ms += performance.now() - t0;
      counter.byTag.set(tag, e);
      counter.total++;
    }
  };
  return pool;
}

async function admin(text: string) {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

async function seed(pool: pg.Pool, n: number) {
  const reminders = Math.min(n, REMINDER_CAP);
  await pool.query(`insert into companies (code, name) select 'B' || g, 'Entreprise ' || g from generate_series(1, ${COMPANIES}) g`);
  await pool.query(
    `insert into clients (company_id, name, email) select c.id, 'Client ' || c.id, 'client' || c.id || '@bench.example' from companies c`,
  );
  await pool.query(`insert into appointment_types (company_id, name) select id, 'Consultation' from companies`);
  await pool.query(
    `insert into invoices (company_id, number, status, due_date, total_ttc)
    select 1 + g % ${COMPANIES}, 'F-' || g, (array['ENVOYEE','IMPAYEE','EN_RETARD'])[1 + g % 3]::invoicestatus,
           $1::timestamptz - make_interval(days => 1 + g % 40), 100 + g % 900
    from generate_series(1, ${n}) g`,
    [NOW.toISOString()],
  );
  await pool.query(`insert into invoice_payments (invoice_id, amount) select id, 10 from invoices where id % 4 = 0`);
  await pool.query(
    `insert into tasks (company_id, title, status, priority, due_date)
    select 1 + g % ${COMPANIES}, 'Tâche ' || g, 'A_FAIRE', (array['normal','high'])[1 + g % 2],
           $1::timestamptz + make_interval(hours => (g % 96) - 72)
    from generate_series(1, ${n}) g`,
    [NOW.toISOString()],
  );
  await pool.query(
    `insert into appointments (company_id, client_id, type_id, start_date_time)
    select cl.company_id, cl.id, ty.id, $1::timestamptz + make_interval(mins => 60 + g % 1200)
    from generate_series(1, ${reminders}) g
    join clients cl on cl.company_id = 1 + g % ${COMPANIES}
    join appointment_types ty on ty.company_id = cl.company_id`,
    [NOW.toISOString()],
  );
  await pool.query('analyze');
}

/** The original's way (reference §B.4): per overdue invoice, a dedupe SELECT then an INSERT. */
async function baselineInvoices(pool: pg.Pool): Promise<{ statements: number; ms: number }> {
  await pool.query('create temp table if not exists nb (company_id int, source_id int, type text, created_at timestamptz default now())');
  const t0 = performance.now();
  let statements = 1;
  const { rows } = await pool.query<{ id: number; company_id: number }>(
    `select id, company_id from invoices where status in ('ENVOYEE','IMPAYEE','EN_RETARD') and due_date < $1`,
    [NOW.toISOString()],
  );
  const client = await pool.connect(); // temp table lives in one session
  try {
    await client.query(
      'create temp table if not exists nb (company_id int, source_id int, type text, created_at timestamptz default now())',
    );
    for (const r of rows) {
      const seen = await client.query(
        'select 1 from nb where company_id = $1 and source_id = $2 and type = $3 and created_at >= current_date',
        [r.company_id, r.id, 'INVOICE_OVERDUE'],
      );
      statements++;
      if (seen.rowCount === 0) {
        await client.query('insert into nb (company_id, source_id, type) values ($1, $2, $3)', [r.company_id, r.id, 'INVOICE_OVERDUE']);
        statements++;
      }
    }
  } finally {
    client.release();
  }
  return { statements, ms: performance.now() - t0 };
}

async function main() {
  const sink = await startSmtpSink();
  const config = parseConfig({ NODE_ENV: 'test', SMTP_URL: sink.url, FRONTEND_URL: 'https://app.lokario.fr' });
  const notificationTags = ['invoices', 'overdueTasks', 'criticalTasks', 'trials'];
  const summary: string[] = [];
  for (const n of SIZES) {
    const name = `lokario_bench_overdue_${process.pid}_${n}`;
    await admin(`drop database if exists "${name}"`);
    await admin(`create database "${name}"`);
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    const counter: Counter = { total: 0, byTag: new Map() };
    const pool = countingPool(url.toString(), counter);
    try {
      await migrate(drizzle({ client: pool }), { migrationsFolder: MIGRATIONS_DIR });
      await seed(pool, n);
      const db = drizzle({ client: pool, schema }) as unknown as Db;
      for (const label of ['first run', 'second run']) {
        counter.total = 0;
        counter.byTag.clear();
        const mail = createMailFactory(config);
        const t0 = performance.now();
        const res = await overdueRemindersJob.run({
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
        const notifStatements = notificationTags.reduce((s, t) => s + (counter.byTag.get(t)?.n ?? 0), 0);
        const invoicesMs = counter.byTag.get('invoices')?.ms ?? 0;
        const s = res.stats as Record<string, Record<string, unknown>>;
        console.log(`\nN=${n} ${label}: ${counter.total} statements, ${ms.toFixed(0)} ms`);
        console.log(`  notification/status statements: ${notifStatements} (invoices part ${invoicesMs.toFixed(1)} ms)`);
        console.log(`  per tag: ${[...counter.byTag].map(([k, v]) => `${k}=${v.n}`).join(' ')}`);
        console.log(
          `  invoices ${JSON.stringify(s.invoices)} overdueTasks ${JSON.stringify(s.overdueTasks)} criticalTasks ${JSON.stringify(s.criticalTasks)}`,
        );
        console.log(`  reminders sent=${s.reminders.sent} alreadySent=${s.reminders.alreadySent}`);
        if (label === 'first run') {
          const total = counter.total;
          const base = await baselineInvoices(pool);
          console.log(
            `  baseline (original N+1, invoice part only): ${base.statements} statements, ${base.ms.toFixed(0)} ms` +
              ` → set-based is ${(base.ms / Math.max(invoicesMs, 0.001)).toFixed(1)}x faster, ${(base.statements / Math.max(counter.byTag.get('invoices')?.n ?? 1, 1)).toFixed(0)}x fewer statements`,
          );
          summary.push(
            `N=${n}: ${notifStatements} notification statements, ${total} in all (${counter.byTag.get('reminders:sent')?.n ?? 0} of them one per email sent), ${ms.toFixed(0)} ms; baseline invoice part ${base.statements} statements / ${base.ms.toFixed(0)} ms vs ${invoicesMs.toFixed(1)} ms`,
          );
        }
      }
    } finally {
      await pool.end();
      await admin(`drop database if exists "${name}" with (force)`);
    }
  }
  await sink.close();
  console.log(`\nsummary\n  ${summary.join('\n  ')}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
