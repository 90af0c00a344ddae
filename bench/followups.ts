/**
 * Benchmark of the follow-ups job (issue 4): 1,000 due follow-ups across 20 companies sent to a
 * local smtp-server, against the same 1,000 messages through a bare pooled nodemailer transport,
 * measured side by side in one run. Prints both rates, their ratio, the database round trips
 * per sent email (every statement through the driver is counted) and the peak RSS.
 *
 *   npx tsx bench/followups.ts            (needs the PostgreSQL of tests/, or TEST_DATABASE_URL)
 */
import nodemailer from 'nodemailer';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import { sql } from 'drizzle-orm';
import * as schema from '../db/schema/index.js';
import { MIGRATIONS_DIR, type Db } from '../db/client.js';
import { followupsJob } from '../lib/jobs/followups/index.js';
import { parseConfig } from '../lib/config.js';
import { createLogger } from '../lib/log.js';
import { createMailFactory } from '../lib/mail/transport.js';
import { startSmtpSink } from '../tests/helpers/smtp.js';

const COMPANIES = 20;
const PER_COMPANY = 50;
const TOTAL = COMPANIES * PER_COMPANY;
const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const NOW = new Date('2026-03-11T10:00:00Z');

function urlFor(name: string) {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}
async function admin(text: string) {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try { await c.query(text); } finally { await c.end(); }
}

/** A pool whose every statement (pool.query or a checked-out client's) is counted. */
function countingPool(url: string) {
  const pool = new pg.Pool({ connectionString: url, max: 5 });
  const counter = { statements: 0 };
  pool.on('connect', (client) => {
    const q = client.query.bind(client);
    client.query = ((...args: unknown[]) => { counter.statements++; return (q as (...a: unknown[]) => unknown)(...args); }) as typeof client.query;
  });
  return { pool, counter };
}

async function seed(db: Db) {
  // set-based seeding: 20 companies, one client and one due invoice follow-up per row
  await db.execute(sql`truncate followup_history, followups, followup_creations, inbox_messages, conversations, invoices, clients,
    subscriptions, company_settings, companies restart identity cascade`);
  await db.execute(sql`insert into companies (code, name) select 'B' || g, 'Société ' || g from generate_series(1, ${COMPANIES}) g`);
  await db.execute(sql`insert into company_settings (company_id, settings)
    select id, '{"company_info":{"email":"contact@societe.example"},"followups":{"send_window":{"start":"00:00","end":"23:59","weekdays":[1,2,3,4,5,6,7]}}}'::jsonb from companies`);
  await db.execute(sql`insert into subscriptions (company_id, plan, status) select id, 'PROFESSIONAL', 'ACTIVE' from companies`);
  await db.execute(sql`insert into clients (company_id, name, email)
    select c.id, 'Client ' || c.id || '-' || g, 'client' || c.id || '-' || g || '@client.example' from companies c, generate_series(1, ${PER_COMPANY}) g`);
  await db.execute(sql`insert into invoices (company_id, client_id, number, status, total_ttc, sent_at)
    select company_id, id, 'FAC-' || id, 'ENVOYEE', 1200.00, '2026-01-01T09:00:00Z' from clients`);
  await db.execute(sql`insert into followups (company_id, client_id, type, source_type, source_id, source_label, due_date, status, auto_enabled)
    select company_id, client_id, 'FACTURE_IMPAYEE', 'invoice', id, 'Facture ' || number, '2026-03-01T00:00:00Z', 'A_FAIRE', true from invoices`);
}

async function main() {
  const name = `lokario_bench_followups_${process.pid}`;
  await admin(`drop database if exists "${name}"`);
  await admin(`create database "${name}"`);
  const url = urlFor(name);
  const migratePool = new pg.Pool({ connectionString: url, max: 1 });
  await migrate(drizzle({ client: migratePool }), { migrationsFolder: MIGRATIONS_DIR });
  await migratePool.end();
  const sink = await startSmtpSink();
  try {
    const { pool, counter } = countingPool(url);
    const db = drizzle({ client: pool, schema }) as unknown as Db;
    await seed(db);

    // the messages the job would send, for the baseline: same sizes, same recipients
    const sample = `Bonjour,\n\n${'Sauf erreur de notre part, la facture reste impayée. '.repeat(8)}\n\nCordialement,\nSociété\n`;
    const baseline = nodemailer.createTransport({ host: '127.0.0.1', port: sink.port, secure: false, ignoreTLS: true, pool: true, maxConnections: 5 });
    const b0 = performance.now();
    await Promise.all(Array.from({ length: TOTAL }, (_, i) => baseline.sendMail({
      from: '"Société" <noreply@lokario.fr>', to: `client${i}@client.example`, subject: `Rappel de paiement : Facture FAC-${i}`,
      text: sample, messageId: `<bench.${i}@lokario.fr>`,
    })));
    const baselineMs = performance.now() - b0;
    baseline.close();
    const baselineReceived = sink.received.length;
    sink.received.length = 0;

    const config = parseConfig({ NODE_ENV: 'test', SMTP_URL: sink.url });
    const mail = createMailFactory(config);
    counter.statements = 0;
    const j0 = performance.now();
    const result = await followupsJob.run({
      db, now: NOW, deadline: Date.now() + 10 * 60_000, dryRun: false, scope: {}, log: createLogger({ level: 'silent' }),
      mail, config, runId: 'bench', trigger: 'cli',
    });
    const jobMs = performance.now() - j0;
    mail.closeAll();
    const sent = result.stats.sent as number;
    const statements = counter.statements;
    await pool.end();

    const baselineRate = baselineReceived / (baselineMs / 1000);
    const jobRate = sink.received.length / (jobMs / 1000);
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    console.log(`follow-ups bench: ${TOTAL} due follow-ups, ${COMPANIES} companies, local smtp-server`);
    console.log(`  bare pooled nodemailer : ${baselineReceived} msgs in ${baselineMs.toFixed(0)} ms = ${baselineRate.toFixed(0)} msg/s`);
    console.log(`  followups job          : ${sink.received.length} msgs in ${jobMs.toFixed(0)} ms = ${jobRate.toFixed(0)} msg/s (stats.sent ${sent}, partial ${result.partial})`);
    console.log(`  ratio job / baseline   : ${(jobRate / baselineRate).toFixed(2)} (goal ≥ 0.8)`);
    console.log(`  DB round trips         : ${statements} statements = ${(statements / Math.max(1, sent)).toFixed(2)} per sent email (goal ≤ 3)`);
    console.log(`  peak RSS               : ${peakRssMb.toFixed(0)} MB`);
  } finally {
    await sink.close();
    await admin(`drop database if exists "${name}" with (force)`).catch(() => {});
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
