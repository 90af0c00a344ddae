/**
 * Benchmark of the follow-ups job (issue 4): 1,000 due follow-ups across 20 companies sent to a
 * local smtp-server, against the same 1,000 messages through a bare pooled nodemailer transport,
 * measured side by side in each round. Prints both rates, their ratio, the database round trips
 * per sent email (every statement through the driver is counted) and the peak RSS; then the
 * median ratio over the rounds and the machine load (the box is shared: read the ratio, not the
 * absolute rates).
 *
 * Like for like: both sides use a pooled nodemailer transport of 5 connections (the platform
 * transport's PLATFORM_SMTP_CONNECTIONS in lib/mail/transport.ts) to the same smtp-server in this
 * process; the baseline hands all 1,000 messages to its pool at once, the job 20 at a time
 * (SEND_CONCURRENCY), both keep the 5 connections busy. The connections each side opened and the
 * mean message size are printed. A warm-up (100 messages) runs first so that the baseline does not
 * pay for loading nodemailer and smtp-server; the job's time includes its create phase, sweep and
 * claims (a whole run), the baseline only sends.
 *
 *   npx tsx bench/followups.ts            (needs the PostgreSQL of tests/, or TEST_DATABASE_URL)
 *   BENCH_ROUNDS=7 npx tsx bench/followups.ts
 */
import nodemailer from 'nodemailer';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
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

const COMPANIES = 20;
const PER_COMPANY = 50;
const TOTAL = COMPANIES * PER_COMPANY;
const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const NOW = new Date('2026-03-11T10:00:00Z');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/** = PLATFORM_SMTP_CONNECTIONS of lib/mail/transport.ts: the baseline gets the job's pool size. */
const POOL_CONNECTIONS = 5;
const WARMUP = 100;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
/** CPU time of this process (client and SMTP server; not the database's), ms. */
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

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

/**
 * The local SMTP server both sides send to (smtp-server, in this process, as in the tests): it
 * keeps what it received and counts the connections it was given.
 */
async function startBenchSink() {
  const received: { raw: string }[] = [];
  let connections = 0;
  const server = new SMTPServer({
    secure: false, disabledCommands: ['STARTTLS'], authOptional: true, logger: false,
    onConnect(_session, cb) { connections++; cb(); },
    onData(stream, _session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => { received.push({ raw: Buffer.concat(chunks).toString('utf8') }); cb(); });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port, url: `smtp://127.0.0.1:${port}`, received,
    /** Connections opened since the last call. */
    takeConnections: () => { const n = connections; connections = 0; return n; },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
type Sink = Awaited<ReturnType<typeof startBenchSink>>;

async function round(url: string, sink: Sink, i: number) {
  const { pool, counter } = countingPool(url);
  const db = drizzle({ client: pool, schema }) as unknown as Db;
  try {
    await seed(db);
    sink.received.length = 0;
    sink.takeConnections();

    // the messages the job would send, for the baseline: same sizes, same recipients
    const sample = `Bonjour,\n\n${'Sauf erreur de notre part, la facture reste impayée. '.repeat(8)}\n\nCordialement,\nSociété\n`;
    const baseline = nodemailer.createTransport({ host: '127.0.0.1', port: sink.port, secure: false, ignoreTLS: true, pool: true, maxConnections: POOL_CONNECTIONS });
    const bc = cpuMs();
    const b0 = performance.now();
    await Promise.all(Array.from({ length: TOTAL }, (_, k) => baseline.sendMail({
      from: '"Société" <noreply@lokario.fr>', to: `client${k}@client.example`, subject: `Rappel de paiement : Facture FAC-${k}`,
      text: sample, messageId: `<bench.${i}.${k}@lokario.fr>`,
    })));
    const baselineMs = performance.now() - b0;
    const baselineCpu = cpuMs() - bc;
    baseline.close();
    const baselineReceived = sink.received.length;
    const baselineBytes = sink.received.reduce((a, m) => a + m.raw.length, 0) / Math.max(1, baselineReceived);
    const baselineConnections = sink.takeConnections();
    sink.received.length = 0;

    const config = parseConfig({ NODE_ENV: 'test', SMTP_URL: sink.url });
    const mail = createMailFactory(config);
    counter.statements = 0;
    const jc = cpuMs();
    const j0 = performance.now();
    const result = await followupsJob.run({
      db, now: NOW, deadline: Date.now() + 10 * 60_000, dryRun: false, scope: {}, log: createLogger({ level: 'silent' }),
      mail, config, runId: `bench-${i}`, trigger: 'cli',
    });
    const jobMs = performance.now() - j0;
    const jobCpu = cpuMs() - jc;
    mail.closeAll();
    const jobReceived = sink.received.length;
    const jobBytes = sink.received.reduce((a, m) => a + m.raw.length, 0) / Math.max(1, jobReceived);
    const jobConnections = sink.takeConnections();
    const sent = result.stats.sent as number;
    const r = {
      baselineMs, baselineCpu, jobCpu, baselineReceived, baselineBytes, baselineConnections, jobMs, jobReceived, jobBytes, jobConnections, sent,
      statements: counter.statements, partial: result.partial,
      baselineRate: baselineReceived / (baselineMs / 1000), jobRate: jobReceived / (jobMs / 1000),
    };
    console.log(`round ${i + 1}: baseline ${r.baselineRate.toFixed(0)} msg/s (${baselineMs.toFixed(0)} ms), job ${r.jobRate.toFixed(0)} msg/s (${jobMs.toFixed(0)} ms, sent ${sent}${result.partial ? ', PARTIAL' : ''}), ratio ${(r.jobRate / r.baselineRate).toFixed(2)}, process CPU ${baselineCpu.toFixed(0)} / ${jobCpu.toFixed(0)} ms, ${(r.statements / Math.max(1, sent)).toFixed(2)} statements/email, load ${load()}`);
    return r;
  } finally {
    await pool.end();
  }
}

async function main() {
  const name = `lokario_bench_followups_${process.pid}`;
  await admin(`drop database if exists "${name}"`);
  await admin(`create database "${name}"`);
  const url = urlFor(name);
  const migratePool = new pg.Pool({ connectionString: url, max: 1 });
  await migrate(drizzle({ client: migratePool }), { migrationsFolder: MIGRATIONS_DIR });
  await migratePool.end();
  const sink = await startBenchSink();
  const loadBefore = load();
  try {
    // warm-up: nodemailer, smtp-server and the loopback path, for neither side in particular
    const warm = nodemailer.createTransport({ host: '127.0.0.1', port: sink.port, secure: false, ignoreTLS: true, pool: true, maxConnections: POOL_CONNECTIONS });
    await Promise.all(Array.from({ length: WARMUP }, (_, k) => warm.sendMail({ from: 'warm@lokario.fr', to: `w${k}@client.example`, subject: 'warm-up', text: 'x' })));
    warm.close();

    const rounds = [];
    for (let i = 0; i < ROUNDS; i++) rounds.push(await round(url, sink, i));

    const last = rounds[rounds.length - 1];
    const ratios = rounds.map((r) => r.jobRate / r.baselineRate);
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    console.log('');
    console.log(`follow-ups bench: ${TOTAL} due follow-ups, ${COMPANIES} companies, local smtp-server, ${ROUNDS} rounds`);
    console.log(`  bare pooled nodemailer : median ${median(rounds.map((r) => r.baselineRate)).toFixed(0)} msg/s (${last.baselineReceived} msgs, ${last.baselineBytes.toFixed(0)} bytes each, ${last.baselineConnections} connections opened)`);
    console.log(`  followups job          : median ${median(rounds.map((r) => r.jobRate)).toFixed(0)} msg/s (${last.jobReceived} msgs, ${last.jobBytes.toFixed(0)} bytes each, ${last.jobConnections} connections opened, stats.sent ${last.sent})`);
    console.log(`  ratio job / baseline   : median ${median(ratios).toFixed(2)} (min ${Math.min(...ratios).toFixed(2)}, max ${Math.max(...ratios).toFixed(2)}; goal ≥ 0.8)`);
    console.log(`  process CPU            : median baseline ${median(rounds.map((r) => r.baselineCpu)).toFixed(0)} ms, job ${median(rounds.map((r) => r.jobCpu)).toFixed(0)} ms (client + SMTP server in this process; the database's CPU not counted)`);
    console.log(`  DB round trips         : ${last.statements} statements = ${(last.statements / Math.max(1, last.sent)).toFixed(2)} per sent email (goal ≤ 3)`);
    console.log(`  peak RSS               : ${peakRssMb.toFixed(0)} MB`);
    console.log(`  load average (1/5/15)  : before ${loadBefore}, after ${load()} on ${os.cpus().length} cores`);
  } finally {
    await sink.close();
    await admin(`drop database if exists "${name}" with (force)`).catch(() => {});
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
