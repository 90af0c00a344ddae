/**
 * Scale-out benchmark (not a test; figures in docs/scale.md). Needs Dovecot and the PostgreSQL of
 * tests/ (or TEST_DATABASE_URL). Everything goes through the real local server (`npm start`'s
 * entry point) over HTTP, as Vercel Cron would call it; fan-out shards call the same server.
 *
 *   npx tsx bench/scale.ts concurrency   SYNC_CONCURRENCY 4/8/16/32, one invocation, fan-out off
 *   npx tsx bench/scale.ts inbox         SCALE_MAILBOXES (2,000) mailboxes behind a WAN link: fan-out off vs on
 *   npx tsx bench/scale.ts followups     SCALE_FOLLOWUPS (20,000) due across SCALE_COMPANIES (500): fan-out off vs on
 *
 * Inbox: one Dovecot user per mailbox, behind the WAN link of bench/inbox-sync.ts 1b (10 ms one
 * way, STARTTLS). A first sweep syncs every mailbox once (first sync, printed); then before each
 * measured sweep 5 % of the mailboxes get 1–3 new messages, the other 95 % nothing new. Printed
 * per sweep: time until every mailbox was synced once, shards, each invocation's throughput and
 * whether it stayed inside its budget, peak PostgreSQL connections of the bench database.
 * All mailboxes are on one Dovecot, standing for many providers: the per-host cap is lifted
 * (IMAP_HOST_MAX_CONNECTIONS=256) so that it does not stand for Gmail's limit here.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { SMTPServer } from 'smtp-server';
import { encryptSecret } from '../lib/crypto/fernet.js';
import { adminQuery, urlFor } from '../devtools/pg-admin.js';
import { startDovecot, type Dovecot } from '../devtools/dovecot.js';
import { startLocalServer, stopLocalServer, type LocalServer } from '../devtools/server.js';
import { migrateDb } from '../db/client.js';
import { slowLink } from './wan-link.js';

const N = Number(process.env.SCALE_MAILBOXES ?? 2_000);
const FOLLOWUPS = Number(process.env.SCALE_FOLLOWUPS ?? 20_000);
const COMPANIES = Number(process.env.SCALE_COMPANIES ?? 500);
const WAN = { oneWayMs: 10, mbitPerSec: 200 };
const KEY = 'bench-scale-master-key';
const SECRET = 'bench-scale-secret-0123456789';
const DB_NAME = `lokario_bench_scale_${process.pid}`;
const TICKS_PER_SEC = 100; // /proc/<pid>/stat clock ticks (CLK_TCK on Linux)

type Row = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function freshDb() {
  await adminQuery(`drop database if exists "${DB_NAME}" with (force)`);
  await adminQuery(`create database "${DB_NAME}"`);
  const url = urlFor(DB_NAME);
  await migrateDb({ driver: 'pg', url });
  const pool = new pg.Pool({ connectionString: url, max: 3, application_name: 'bench' });
  pool.on('error', () => {});
  return {
    url,
    pool,
    drop: async () => {
      await pool.end();
      await adminQuery(`drop database if exists "${DB_NAME}" with (force)`);
    },
  };
}

/** Peak of pg_stat_activity for the bench database (every 100 ms), the bench's own pool excluded. */
function connectionPoller(pool: pg.Pool) {
  let peak = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const r = await pool
        .query(`select count(*)::int as n from pg_stat_activity where datname = $1 and application_name <> 'bench'`, [DB_NAME])
        .catch(() => null);
      if (r) peak = Math.max(peak, r.rows[0].n);
      await new Promise((res) => setTimeout(res, 100));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    return peak;
  };
}

function cpuSec(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_SEC; // utime, stime (fields 14, 15)
}

async function server(env: Record<string, string>, ca?: string): Promise<LocalServer> {
  return startLocalServer({
    PORT: '0',
    SCHEDULER: 'off',
    CRON_SECRET: SECRET,
    DATABASE_URL: urlFor(DB_NAME),
    ENCRYPTION_MASTER_KEY: KEY,
    ...(ca ? { NODE_EXTRA_CA_CERTS: ca } : {}),
    LOG_LEVEL: 'warn',
    IMAP_HOST_MAX_CONNECTIONS: '256',
    ...env,
  });
}

async function call(srv: LocalServer, p: string) {
  const r = await fetch(`${srv.url}${p}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SECRET}`, 'user-agent': 'vercel-cron/1.0' },
  });
  return (await r.json()) as Row;
}

async function dbNow(pool: pg.Pool): Promise<Date> {
  return (await pool.query('select now() as t')).rows[0].t as Date;
}

/** Waits until no run of the job is still running (a coordinator's shards work after it answered). */
async function runsSince(pool: pg.Pool, job: string, since: Date, timeoutMs = 15 * 60_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await pool.query(
      `select id, trigger, parent_run_id, outcome, stats, fanout from cron_runs where job = $1 and started_at >= $2 order by started_at`,
      [job, since],
    );
    if (r.rows.length && r.rows.every((x: Row) => x.outcome !== 'running')) return r.rows as Row[];
    if (Date.now() > until) throw new Error('runs did not finish');
    await new Promise((res) => setTimeout(res, 250));
  }
}

function invocationLine(runs: Row[], itemsStat: string) {
  const workers = runs.filter((r) => !r.fanout && r.outcome !== 'skipped');
  const rates = workers.map((r) => r.stats[itemsStat] / (r.stats.durationMs / 1000));
  const inside = workers.every((r) => r.stats.durationMs <= r.stats.budgetMs);
  const maxS = Math.max(...workers.map((r) => r.stats.durationMs / 1000));
  return {
    invocations: workers.length,
    perInvocation: `${Math.min(...rates).toFixed(1)}–${Math.max(...rates).toFixed(1)} ${itemsStat}/s (mean ${(rates.reduce((a, b) => a + b, 0) / rates.length).toFixed(1)})`,
    longestS: maxS.toFixed(1),
    insideBudget: inside,
  };
}

// ---------------------------------------------------------------- inbox-sync

async function seedMailboxes(pool: pg.Pool, d: Dovecot, linkPort: number, count: number, companyOf: (i: number) => number) {
  const boxes = Array.from({ length: count }, () => d.takeMailbox());
  // 500 rows per INSERT, each statement with its own numbered parameters
  for (let i = 0; i < boxes.length; i += 500) {
    const values: unknown[] = [];
    const rows = boxes.slice(i, i + 500).map((b, j) => {
      values.push(companyOf(i + j), linkPort, b.user, encryptSecret(b.password, KEY));
      const o = j * 4;
      return `($${o + 1}, 'imap', 'Bench', '127.0.0.1', $${o + 2}, $${o + 3}, $${o + 4}, false, 'INBOX')`;
    });
    await pool.query(
      `insert into inbox_integrations (company_id, integration_type, name, imap_server, imap_port, email_address, email_password, use_ssl, imap_folder) values ${rows.join(',')}`,
      values,
    );
  }
  return boxes;
}

async function companies(pool: pg.Pool, count: number): Promise<number[]> {
  const r = await pool.query(
    `insert into companies (code, name) select 'S' || g || '-' || $2::text, 'Société ' || g from generate_series(1, $1::int) g returning id`,
    [count, String(Date.now())],
  );
  await pool.query(`insert into company_settings (company_id, settings) select id, '{}'::jsonb from unnest($1::int[]) id`, [
    r.rows.map((x: Row) => x.id),
  ]);
  return r.rows.map((x: Row) => x.id);
}

let mailSeq = 0;
async function newMail(d: Dovecot, boxes: { user: string; password: string }[], share = 0.05) {
  const chosen = boxes.filter(() => Math.random() < share);
  let messages = 0;
  for (let i = 0; i < chosen.length; i += 10) {
    await Promise.all(
      chosen.slice(i, i + 10).map(async (b) => {
        const k = 1 + Math.floor(Math.random() * 3);
        messages += k;
        const raws = Array.from({ length: k }, () => {
          const id = ++mailSeq;
          return `From: Client ${id % 50} <client${id % 50}@exemple.fr>\r\nTo: ${b.user}\r\nSubject: Devis ${id}\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: <scale-${id}@t>\r\n\r\nBonjour, ${id}\r\n`;
        });
        await d.append(b.user, b.password, raws);
      }),
    );
  }
  return { mailboxes: chosen.length, messages };
}

async function inboxSweep(label: string, srv: LocalServer, pool: pg.Pool, count: number, query = '') {
  const t0 = await dbNow(pool);
  const started = Date.now();
  const stopPoll = connectionPoller(pool);
  const cpu0 = cpuSec(srv.child.pid!);
  const answer = await call(srv, `/api/inbox/integrations/sync-all${query}`);
  const answeredS = (Date.now() - started) / 1000;
  let allSyncedS = NaN;
  for (;;) {
    const r = await pool.query(
      `select count(*)::int as n from inbox_integrations where updated_at >= $1 and last_sync_status = 'success'`,
      [t0],
    );
    if (r.rows[0].n >= count) {
      allSyncedS = (Date.now() - started) / 1000;
      break;
    }
    if (Date.now() - started > 15 * 60_000) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  const runs = await runsSince(pool, 'inbox-sync', t0);
  const peak = await stopPoll();
  const cpu = cpuSec(srv.child.pid!) - cpu0;
  const line = invocationLine(runs, 'synced');
  const imported = runs.reduce((n, r) => n + (r.stats.messagesImported ?? 0), 0);
  const result = {
    sweep: label,
    mailboxes: count,
    shards: answer.stats?.fanout ? answer.stats.shards : 1,
    coordinatorAnsweredS: answeredS.toFixed(1),
    allSyncedS: allSyncedS.toFixed(1),
    overallRate: `${(count / allSyncedS).toFixed(1)} mailboxes/s`,
    ...line,
    messagesImported: imported,
    peakPgConnections: peak,
    serverCpuS: cpu.toFixed(1),
    serverCpuPerMailboxMs: ((cpu * 1000) / count).toFixed(1),
  };
  console.log(JSON.stringify(result));
  return result;
}

async function benchInbox(part: 'inbox' | 'concurrency') {
  const db = await freshDb();
  const d = await startDovecot({ pool: N });
  const link = await slowLink(d.port, WAN.oneWayMs, WAN.mbitPerSec);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lokario-scale-'));
  const ca = path.join(dir, 'ca.pem');
  fs.writeFileSync(ca, d.cert);
  let srv: LocalServer | undefined;
  try {
    const cos = await companies(db.pool, Math.max(1, Math.ceil(N / 4)));
    // uneven tenants: a quarter of the mailboxes belong to one company, the rest 1–3 per company
    const boxes = await seedMailboxes(db.pool, d, link.port, N, (i) =>
      i < N / 4 ? cos[0] : (cos[1 + (i % (cos.length - 1 || 1))] ?? cos[0]),
    );
    console.log(
      `# ${N} mailboxes on Dovecot behind a ${2 * WAN.oneWayMs} ms RTT link (STARTTLS); ${os.availableParallelism()} CPUs, load ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
    );
    // first sync of every mailbox (fan-out on, defaults): fills the cursors and the cost ledger
    srv = await server({ SYNC_CONCURRENCY: '16', DB_POOL_MAX: '20' }, ca);
    await inboxSweep('first sync (fan-out auto)', srv, db.pool, N);
    await stopLocalServer(srv);
    if (part === 'concurrency') {
      for (const c of [4, 8, 16, 32]) {
        srv = await server({ FANOUT: 'off', SYNC_CONCURRENCY: String(c), DB_POOL_MAX: '10' }, ca);
        await inboxSweep(`one invocation, SYNC_CONCURRENCY=${c}`, srv, db.pool, N);
        await stopLocalServer(srv);
      }
      return;
    }
    for (const [label, env] of [
      ['fan-out off (one invocation)', { FANOUT: 'off' }],
      ['fan-out auto (defaults)', {}],
      ['fan-out auto, FANOUT_TARGET_SEC=10', { FANOUT_TARGET_SEC: '10' }],
    ] as const) {
      const fresh = await newMail(d, boxes);
      console.log(`# ${fresh.mailboxes} mailboxes got ${fresh.messages} new messages`);
      srv = await server({ DB_POOL_MAX: '20', ...env }, ca);
      await inboxSweep(label, srv, db.pool, N);
      await stopLocalServer(srv);
    }
  } finally {
    if (srv) await stopLocalServer(srv);
    await link.close();
    await d.stop();
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- followups

async function sink() {
  const ids = new Map<string, number>();
  let received = 0;
  const s = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    logger: false,
    onData(stream, _session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received++;
        const m = /^Message-ID:\s*(\S+)/im.exec(
          Buffer.concat(chunks)
            .toString('utf8')
            .split(/\r?\n\r?\n/)[0],
        );
        const id = m?.[1] ?? `none-${received}`;
        ids.set(id, (ids.get(id) ?? 0) + 1);
        cb();
      });
    },
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return {
    url: `smtp://127.0.0.1:${(s.server.address() as AddressInfo).port}`,
    stats: () => ({ received, duplicates: [...ids.values()].filter((n) => n > 1).reduce((a, n) => a + n - 1, 0) }),
    reset: () => {
      ids.clear();
      received = 0;
    },
    close: () => new Promise<void>((r) => s.close(() => r())),
  };
}

async function seedFollowups(pool: pg.Pool) {
  await pool.query(`truncate followup_history, followups, followup_creations, inbox_messages, conversations, invoices, clients,
    subscriptions, company_settings, companies, cron_runs, cron_leases restart identity cascade`);
  await pool.query(`insert into companies (code, name) select 'F' || g, 'Société ' || g from generate_series(1, $1::int) g`, [COMPANIES]);
  await pool.query(`insert into company_settings (company_id, settings)
    select id, '{"company_info":{"email":"contact@societe.example"},"followups":{"send_window":{"start":"00:00","end":"23:59","weekdays":[1,2,3,4,5,6,7]}}}'::jsonb from companies`);
  await pool.query(`insert into subscriptions (company_id, plan, status) select id, 'PROFESSIONAL', 'ACTIVE' from companies`);
  const per = Math.ceil(FOLLOWUPS / COMPANIES);
  await pool.query(
    `insert into clients (company_id, name, email)
    select c.id, 'Client ' || c.id || '-' || g, 'client' || c.id || '-' || g || '@client.example' from companies c, generate_series(1, $1::int) g`,
    [per],
  );
  await pool.query(
    `insert into invoices (company_id, client_id, number, status, total_ttc, sent_at)
    select company_id, id, 'FAC-' || id, 'ENVOYEE', 1200.00, '2026-01-01T09:00:00Z' from clients order by id limit $1`,
    [FOLLOWUPS],
  );
  await pool.query(`insert into followups (company_id, client_id, type, source_type, source_id, source_label, due_date, status, auto_enabled)
    select company_id, client_id, 'FACTURE_IMPAYEE', 'invoice', id, 'Facture ' || number, '2026-03-01T00:00:00Z', 'A_FAIRE', true from invoices`);
}

async function benchFollowups() {
  const db = await freshDb();
  const smtp = await sink();
  let srv: LocalServer | undefined;
  try {
    console.log(
      `# ${FOLLOWUPS} due follow-ups across ${COMPANIES} companies, SMTP sink in this process; ${os.availableParallelism()} CPUs, load ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
    );
    for (const [label, env] of [
      ['fan-out off (one invocation)', { FANOUT: 'off' }],
      ['fan-out auto (defaults)', {}],
    ] as const) {
      await seedFollowups(db.pool);
      smtp.reset();
      srv = await server({ SMTP_URL: smtp.url, DB_POOL_MAX: '20', ...env });
      const x0 = (await db.pool.query(`select xact_commit + xact_rollback as n from pg_stat_database where datname = $1`, [DB_NAME]))
        .rows[0].n;
      const t0 = await dbNow(db.pool);
      const started = Date.now();
      const stopPoll = connectionPoller(db.pool);
      const answer = await call(srv, '/api/followups/process-automatic');
      let runs = await runsSince(db.pool, 'followups', t0);
      // fan-out off with more work than one budget: the next runs continue, as the cron would call them
      let sent = runs.reduce((n, r) => n + (r.stats.sent ?? 0), 0);
      let calls = 1;
      while (sent < FOLLOWUPS && calls < 20) {
        await call(srv, '/api/followups/process-automatic');
        calls++;
        runs = await runsSince(db.pool, 'followups', t0);
        sent = runs.reduce((n, r) => n + (r.stats.sent ?? 0), 0);
      }
      const elapsed = (Date.now() - started) / 1000;
      const peak = await stopPoll();
      const x1 = (await db.pool.query(`select xact_commit + xact_rollback as n from pg_stat_database where datname = $1`, [DB_NAME]))
        .rows[0].n;
      const s = smtp.stats();
      console.log(
        JSON.stringify({
          sweep: label,
          due: FOLLOWUPS,
          shards: answer.stats?.fanout ? answer.stats.shards : 1,
          calls,
          sent,
          received: s.received,
          duplicates: s.duplicates,
          seconds: elapsed.toFixed(1),
          emailsPerSec: (s.received / elapsed).toFixed(0),
          ...invocationLine(runs, 'sent'),
          transactionsPerEmail: ((Number(x1) - Number(x0)) / Math.max(1, s.received)).toFixed(2),
          peakPgConnections: peak,
        }),
      );
      await stopLocalServer(srv);
      srv = undefined;
    }
  } finally {
    if (srv) await stopLocalServer(srv);
    await smtp.close();
    await db.drop();
  }
}

const part = process.argv[2];
if (part === 'inbox' || part === 'concurrency') await benchInbox(part);
else if (part === 'followups') await benchFollowups();
else {
  console.error('usage: npx tsx bench/scale.ts concurrency|inbox|followups');
  process.exit(2);
}
