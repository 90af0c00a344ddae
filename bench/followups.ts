/**
 * Benchmark of the follow-ups job (issue 4): 1,000 due follow-ups across 20 companies sent to a
 * local smtp-server, against the same 1,000 messages through a bare pooled nodemailer transport,
 * measured side by side in each round. Prints both rates, their ratio, the database round trips
 * per sent email (every statement through the driver is counted) and the peak RSS; then the
 * median ratio over the rounds and the machine load (the box is shared: read the ratio, not the
 * absolute rates).
 *
 * Like for like: the baseline sends the job's own emails (captured in the warm-up round), and both
 * sides use a pooled nodemailer transport of 5 connections (the platform
 * transport's PLATFORM_SMTP_CONNECTIONS in lib/mail/transport.ts) to the same smtp-server in this
 * process; the baseline hands all 1,000 messages to its pool at once, the job 20 at a time
 * (SEND_CONCURRENCY), both keep the 5 connections busy. The connections each side opened and the
 * mean message size are printed. A first round (printed, not counted) warms both sides up, and the
 * two sides take turns going first; the job's time includes its create phase, sweep, claims and
 * the recording of every send (a whole run), the baseline only sends. The process CPU of each side
 * (client and SMTP server: this process; not the database) is printed as a load-independent check.
 *
 *   npx tsx bench/followups.ts            (needs the PostgreSQL of tests/, or TEST_DATABASE_URL)
 *   BENCH_ROUNDS=7 npx tsx bench/followups.ts
 */
import nodemailer from 'nodemailer';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
/** CPU time of this process (client and SMTP server; not the database's), ms. */
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function urlFor(name: string) {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
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

/** A pool whose every statement (pool.query or a checked-out client's) is counted. */
function countingPool(url: string) {
  const pool = new pg.Pool({ connectionString: url, max: 5 });
  // the final `drop database … with (force)` may still find a just-released connection: harmless
  pool.on('error', () => {});
  const counter = { statements: 0 };
  pool.on('connect', (client) => {
    const q = client.query.bind(client);
    client.query = ((...args: unknown[]) => {
      counter.statements++;
      return (q as (...a: unknown[]) => unknown)(...args);
    }) as typeof client.query;
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
    secure: false,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    logger: false,
    onConnect(_session, cb) {
      connections++;
      cb();
    },
    onData(stream, _session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({ raw: Buffer.concat(chunks).toString('utf8') });
        cb();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    received,
    /** Connections opened since the last call. */
    takeConnections: () => {
      const n = connections;
      connections = 0;
      return n;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
type Sink = Awaited<ReturnType<typeof startBenchSink>>;

/**
 * The baseline sends the very emails the job sent (read back from the sink after the warm-up
 * round: same From, To, Reply-To, subject, text and extra headers), so that the ratio measures
 * the job, not a difference of message.
 */
type BaselineMail = {
  from: { name: string; address: string };
  to: string;
  replyTo?: string;
  subject: string;
  text: string;
  headers: Record<string, string>;
};
let jobMessages: BaselineMail[] = [];

async function captureJobMessages(sink: Sink) {
  jobMessages = await Promise.all(
    sink.received.map(async ({ raw }) => {
      const m = await simpleParser(raw);
      const from = m.from!.value[0];
      const header = (name: string) => String(m.headers.get(name) ?? '');
      return {
        from: { name: from.name, address: from.address! },
        to: m.to && !Array.isArray(m.to) ? m.to.value[0].address! : '',
        ...(m.replyTo ? { replyTo: m.replyTo.value[0].address! } : {}),
        subject: m.subject ?? '',
        text: m.text ?? '',
        headers: { 'Auto-Submitted': header('auto-submitted'), 'X-Lokario-Followup': header('x-lokario-followup') },
      };
    }),
  );
}

/** The job's 1,000 emails through a bare pooled nodemailer transport. */
async function runBaseline(sink: Sink, i: number) {
  if (jobMessages.length !== TOTAL) throw new Error("the job runs first in the warm-up round: its emails are the baseline's");
  sink.received.length = 0;
  sink.takeConnections();
  const baseline = nodemailer.createTransport({
    host: '127.0.0.1',
    port: sink.port,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: POOL_CONNECTIONS,
  });
  const c0 = cpuMs();
  const t0 = performance.now();
  await Promise.all(jobMessages.map((m, k) => baseline.sendMail({ ...m, messageId: `<bench.${i}.${k}@lokario.fr>` })));
  const ms = performance.now() - t0;
  const cpu = cpuMs() - c0;
  baseline.close();
  const received = sink.received.length;
  return { ms, cpu, received, bytes: meanBytes(sink), connections: sink.takeConnections(), rate: received / (ms / 1000) };
}

/** One whole run of the job over the seeded 1,000 due follow-ups. */
async function runTheJob(sink: Sink, db: Db, counter: { statements: number }, i: number) {
  sink.received.length = 0;
  sink.takeConnections();
  const config = parseConfig({ NODE_ENV: 'test', SMTP_URL: sink.url });
  const mail = createMailFactory(config);
  counter.statements = 0;
  const c0 = cpuMs();
  const t0 = performance.now();
  const result = await followupsJob.run({
    db,
    now: NOW,
    deadline: Date.now() + 10 * 60_000,
    dryRun: false,
    scope: {},
    log: createLogger({ level: 'silent' }),
    mail,
    config,
    runId: `bench-${i}`,
    trigger: 'cli',
  });
  const ms = performance.now() - t0;
  const cpu = cpuMs() - c0;
  mail.closeAll();
  if (!jobMessages.length) await captureJobMessages(sink);
  const received = sink.received.length;
  return {
    ms,
    cpu,
    received,
    bytes: meanBytes(sink),
    connections: sink.takeConnections(),
    rate: received / (ms / 1000),
    sent: result.stats.sent as number,
    partial: result.partial,
    statements: counter.statements,
  };
}

const meanBytes = (sink: Sink) => sink.received.reduce((a, m) => a + m.raw.length, 0) / Math.max(1, sink.received.length);

/** One round: fresh data, then both sides, in alternating order (neither always goes first). */
async function round(url: string, sink: Sink, i: number, label: string) {
  const { pool, counter } = countingPool(url);
  const db = drizzle({ client: pool, schema }) as unknown as Db;
  try {
    await seed(db);
    let baseline: Awaited<ReturnType<typeof runBaseline>>;
    let job: Awaited<ReturnType<typeof runTheJob>>;
    // the warm-up round (i = -1) runs the job first: its emails become the baseline's
    if (i % 2 === 0) {
      baseline = await runBaseline(sink, i);
      job = await runTheJob(sink, db, counter, i);
    } else {
      job = await runTheJob(sink, db, counter, i);
      baseline = await runBaseline(sink, i);
    }
    const ratio = job.rate / baseline.rate;
    console.log(
      `${label}: baseline ${baseline.rate.toFixed(0)} msg/s (${baseline.ms.toFixed(0)} ms), job ${job.rate.toFixed(0)} msg/s (${job.ms.toFixed(0)} ms, sent ${job.sent}${job.partial ? ', PARTIAL' : ''}), ratio ${ratio.toFixed(2)}, process CPU ${baseline.cpu.toFixed(0)} / ${job.cpu.toFixed(0)} ms, ${(job.statements / Math.max(1, job.sent)).toFixed(2)} statements/email, load ${load()}`,
    );
    return { baseline, job, ratio };
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
    // a whole round first, not counted: both sides then run warm (JIT, connections, caches);
    // its figures are printed: they are the cold ones
    await round(url, sink, -1, 'warm-up round (not counted)');
    const rounds = [];
    for (let i = 0; i < ROUNDS; i++) rounds.push(await round(url, sink, i, `round ${i + 1}`));

    const last = rounds[rounds.length - 1];
    const ratios = rounds.map((r) => r.ratio);
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    console.log('');
    console.log(`follow-ups bench: ${TOTAL} due follow-ups, ${COMPANIES} companies, local smtp-server, ${ROUNDS} rounds`);
    console.log(
      `  bare pooled nodemailer : median ${median(rounds.map((r) => r.baseline.rate)).toFixed(0)} msg/s (${last.baseline.received} msgs, ${last.baseline.bytes.toFixed(0)} bytes each, ${last.baseline.connections} connections opened)`,
    );
    console.log(
      `  followups job          : median ${median(rounds.map((r) => r.job.rate)).toFixed(0)} msg/s (${last.job.received} msgs, ${last.job.bytes.toFixed(0)} bytes each, ${last.job.connections} connections opened, stats.sent ${last.job.sent})`,
    );
    console.log(
      `  ratio job / baseline   : median ${median(ratios).toFixed(2)} (min ${Math.min(...ratios).toFixed(2)}, max ${Math.max(...ratios).toFixed(2)}; goal ≥ 0.9)`,
    );
    console.log(
      `  process CPU            : median baseline ${median(rounds.map((r) => r.baseline.cpu)).toFixed(0)} ms, job ${median(rounds.map((r) => r.job.cpu)).toFixed(0)} ms (client + SMTP server in this process; the database's CPU not counted)`,
    );
    console.log(
      `  DB round trips         : ${last.job.statements} statements = ${(last.job.statements / Math.max(1, last.job.sent)).toFixed(2)} per sent email (goal ≤ 3)`,
    );
    console.log(`  peak RSS               : ${peakRssMb.toFixed(0)} MB`);
    console.log(`  load average (1/5/15)  : before ${loadBefore}, after ${load()} on ${os.cpus().length} cores`);
  } finally {
    await sink.close();
    await admin(`drop database if exists "${name}" with (force)`).catch(() => {});
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
