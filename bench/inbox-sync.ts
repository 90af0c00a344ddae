/**
 * inbox-sync benchmarks (not part of the test suite). Needs Dovecot and a local PostgreSQL.
 *   npx tsx bench/inbox-sync.ts [1|1b|2|3]   (no argument: all parts)
 * 1. First sync of 2,000 messages (mixed sizes, ~5 % with attachments) vs a bare imapflow
 *    `fetch('1:*', { uid, source })` of the same mailbox, and vs that bare fetch followed by the
 *    same MIME parsing as the job (parseMessage: repair, mailparser, HTML text, keys, kind; no
 *    database), same run (3 alternating rounds, medians): rates and ratios (goals ≥ 0.7 vs the
 *    bare fetch, ≥ 0.8 vs fetch + parse), and the CPU time of this process for each side.
 *    1b. The same through a relay that behaves like a WAN link to the IMAP server (what a
 *    mailbox provider is in production): there the download, not the CPU, bounds both sides.
 * 2. 50 integrations with nothing new: run time and IMAP commands per mailbox after login
 *    (goal ≤ 2, run < 3 s).
 * 3. Peak RSS while importing one 25 MB message.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';
import { ImapFlow } from 'imapflow';
import pg from 'pg';
import { sql } from 'drizzle-orm';
import { openDb, queryRows, closeAllDbs, type Db } from '../db/client.js';
import { parseConfig } from '../lib/config.js';
import { createLogger } from '../lib/log.js';
import { encryptSecret } from '../lib/crypto/fernet.js';
import { runInboxSync, type InboxSyncOptions } from '../lib/jobs/inbox-sync/run.js';
import { parseMessage } from '../lib/mime/parse.js';
import type { JobContext } from '../lib/cron/types.js';
import { startDovecot, type Dovecot } from '../devtools/dovecot.js';
import { slowLink } from './wan-link.js';

/** Rounds of part 1 (a bare fetch, then a first sync into a fresh database); compared by medians. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Part 1b's link to the IMAP server: a mailbox provider over the internet, not loopback. */
const WAN = { oneWayMs: 10, mbitPerSec: 200 };
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ADMIN = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const KEY = 'bench-master-key';

function mail(i: number): string {
  const withAttachment = i % 20 === 0; // 5 %
  const bodySize = [300, 2_000, 8_000, 30_000][i % 4]; // mixed sizes
  const body = randomBytes(bodySize / 2)
    .toString('hex')
    .replace(/(.{72})/g, '$1\r\n');
  const head = `From: Client ${i % 50} <client${i % 50}@exemple.fr>\r\nTo: me@test.local\r\nSubject: Message ${i % 100}\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: <bench-${i}@t>\r\nMIME-Version: 1.0\r\n`;
  if (!withAttachment) return `${head}Content-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`;
  const att = randomBytes(150_000)
    .toString('base64')
    .replace(/(.{76})/g, '$1\r\n');
  return `${head}Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n${body}\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="doc-${i}.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${att}\r\n--b--\r\n`;
}

async function freshDb(): Promise<{ db: Db; drop(): Promise<void> }> {
  const name = `lokario_bench_inbox_${process.pid}`;
  const admin = new pg.Client({ connectionString: ADMIN });
  await admin.connect();
  await admin.query(`drop database if exists "${name}" with (force)`);
  await admin.query(`create database "${name}"`);
  await admin.end();
  const u = new URL(ADMIN);
  u.pathname = `/${name}`;
  const h = await openDb({ driver: 'pg', url: u.toString(), poolMax: 10, migrate: true });
  return {
    db: h.db,
    async drop() {
      await closeAllDbs();
      const c = new pg.Client({ connectionString: ADMIN });
      await c.connect();
      await c.query(`drop database if exists "${name}" with (force)`);
      await c.end();
    },
  };
}

function ctxFor(db: Db, env: Record<string, string> = {}): JobContext {
  const config = parseConfig({ NODE_ENV: 'test', ENCRYPTION_MASTER_KEY: KEY, SYNC_CONCURRENCY: '4', ...env });
  return {
    db,
    now: new Date(),
    deadline: Date.now() + 10 * 60_000,
    dryRun: false,
    scope: {},
    log: createLogger({ level: 'silent' }),
    mail: {} as never,
    config,
    runId: 'bench',
    trigger: 'cli',
  };
}

async function company(db: Db): Promise<number> {
  const [r] = await queryRows<{ id: number }>(
    db,
    sql`insert into companies (code, name) values (${`B${Date.now()}${Math.random()}`}, 'Bench') returning id`,
  );
  return r.id;
}
async function integration(db: Db, companyId: number, d: Dovecot, box: { user: string; password: string }, port = d.port) {
  await db.execute(sql`insert into inbox_integrations (company_id, name, imap_server, imap_port, email_address, email_password, use_ssl)
    values (${companyId}, 'Bench', '127.0.0.1', ${port}, ${box.user}, ${encryptSecret(box.password, KEY)}, false)`);
}

async function appendMany(d: Dovecot, box: { user: string; password: string }, raws: string[]) {
  const c = await d.client(box.user, box.password);
  for (const r of raws) await c.append('INBOX', r);
  await c.logout();
}

// the simulated WAN link (a relay in a child process): bench/wan-link.ts, shared with bench/scale.ts

async function bench1(d: Dovecot, parts: { loopback: boolean; wan: boolean }) {
  const box = d.takeMailbox();
  const N = 2_000;
  const raws = Array.from({ length: N }, (_, i) => mail(i));
  const bytes = raws.reduce((n, r) => n + r.length, 0);
  await appendMany(d, box, raws);
  const title = `${N} messages (${(bytes / 1e6).toFixed(1)} MB, 5 % with a 150 KB attachment)`;
  if (parts.loopback) await firstSyncVsBareFetch(d, box, N, d.port, `\n1. First sync, ${title}, Dovecot on loopback`);
  if (parts.wan) {
    const link = await slowLink(d.port, WAN.oneWayMs, WAN.mbitPerSec);
    try {
      await firstSyncVsBareFetch(
        d,
        box,
        N,
        link.port,
        `\n1b. The same through a simulated WAN link to the IMAP server (${2 * WAN.oneWayMs} ms round trip, ${WAN.mbitPerSec} Mbit/s), PostgreSQL still local`,
      );
    } finally {
      await link.close();
    }
  }
}

async function firstSyncVsBareFetch(d: Dovecot, box: { user: string; password: string }, N: number, port: number, title: string) {
  // the baselines: the same mailbox, same TLS (STARTTLS), bare imapflow; each source counted
  // (raw fetch) or parsed as the job parses it (fetch + parse), no database
  const bareFetch = (onSource: (uid: number, source: Buffer) => Promise<boolean> | boolean) => async () => {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const c = new ImapFlow({
      host: '127.0.0.1',
      port,
      secure: false,
      auth: { user: box.user, pass: box.password },
      logger: false,
      tls: { ca: d.cert },
      disableAutoIdle: true,
    });
    await c.connect();
    await c.mailboxOpen('INBOX', { readOnly: true });
    let count = 0;
    for await (const m of c.fetch('1:*', { uid: true, source: true }, { uid: true }))
      if (m.source && (await onSource(m.uid, m.source))) count++;
    await c.logout();
    return { count, ms: performance.now() - t0, cpuMs: cpuMs(process.cpuUsage(cpu0)) };
  };
  const maxAttachmentBytes = parseConfig({ NODE_ENV: 'test', ENCRYPTION_MASTER_KEY: KEY }).MAX_ATTACHMENT_BYTES;
  const bare = bareFetch(() => true);
  const bareParse = bareFetch(async (uid, source) => !!(await parseMessage(uid, source, { maxAttachmentBytes })));
  // the job: a first sync of the same mailbox into a fresh database each time
  const sync = async () => {
    const { db, drop } = await freshDb();
    try {
      const companyId = await company(db);
      await integration(db, companyId, d, box, port);
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const res = await runInboxSync(ctxFor(db), { tls: { ca: d.cert } });
      return { count: res.stats.messagesImported as number, ms: performance.now() - t0, cpuMs: cpuMs(process.cpuUsage(cpu0)) };
    } finally {
      await drop();
    }
  };
  // Both sides treated alike, alternating: the first round is cold for both (JIT, Dovecot's cache),
  // the later ones warm, as in a reused function instance. Compared by their medians.
  const bareRuns: Awaited<ReturnType<typeof bare>>[] = [];
  const parseRuns: Awaited<ReturnType<typeof bareParse>>[] = [];
  const syncRuns: Awaited<ReturnType<typeof sync>>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    bareRuns.push(await bare());
    parseRuns.push(await bareParse());
    syncRuns.push(await sync());
  }
  const show = (runs: { ms: number }[]) => runs.map((r) => r.ms.toFixed(0)).join(', ');
  const rawMs = median(bareRuns.map((r) => r.ms));
  const syncMs = median(syncRuns.map((r) => r.ms));
  const rawRate = N / (rawMs / 1000);
  const syncRate = N / (syncMs / 1000);
  const parseMs = median(parseRuns.map((r) => r.ms));
  const parseRate = N / (parseMs / 1000);
  const lost =
    syncRuns.filter((r) => r.count !== N).length +
    bareRuns.filter((r) => r.count !== N).length +
    parseRuns.filter((r) => r.count !== N).length;
  console.log(`${title}; ${ROUNDS} alternating rounds, medians`);
  console.log(
    `   bare imapflow fetch 1:* source : ${rawMs.toFixed(0)} ms (runs ${show(bareRuns)}) = ${rawRate.toFixed(0)} msg/s; CPU of this process ${median(bareRuns.map((r) => r.cpuMs)).toFixed(0)} ms`,
  );
  console.log(
    `   bare fetch + the job's MIME parsing, no database: ${parseMs.toFixed(0)} ms (runs ${show(parseRuns)}) = ${parseRate.toFixed(0)} msg/s; CPU of this process ${median(parseRuns.map((r) => r.cpuMs)).toFixed(0)} ms`,
  );
  console.log(
    `   inbox-sync first sync (download + parse + dedupe + clients + threading + store): ${syncMs.toFixed(0)} ms (runs ${show(syncRuns)}) = ${syncRate.toFixed(0)} msg/s; CPU of this process ${median(syncRuns.map((r) => r.cpuMs)).toFixed(0)} ms (Dovecot's and PostgreSQL's not counted)`,
  );
  if (lost) console.log(`   !! ${lost} run(s) did not get all ${N} messages`);
  console.log(
    `   ratio sync/(fetch + parse) = ${(syncRate / parseRate).toFixed(2)} (goal >= 0.8); cold round alone ${(parseRuns[0].ms / syncRuns[0].ms).toFixed(2)}`,
  );
  console.log(
    `   ratio sync/raw = ${(syncRate / rawRate).toFixed(2)} (goal >= 0.7); cold round alone ${(bareRuns[0].ms / syncRuns[0].ms).toFixed(2)}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} on ${availableParallelism()} cores`,
  );
}

async function bench2(d: Dovecot) {
  const { db, drop } = await freshDb();
  try {
    const companyId = await company(db);
    for (let i = 0; i < 50; i++) {
      const box = d.takeMailbox();
      await appendMany(d, box, [mail(i * 7 + 1)]);
      await integration(db, companyId, d, box);
    }
    await runInboxSync(ctxFor(db), { tls: { ca: d.cert } });
    const perIntegration = new Map<number, string[]>();
    const opts: InboxSyncOptions = {
      tls: { ca: d.cert },
      onCommand: (id, verb) => {
        const l = perIntegration.get(id) ?? [];
        l.push(verb);
        perIntegration.set(id, l);
      },
    };
    const t0 = performance.now();
    const res = await runInboxSync(ctxFor(db), opts);
    const ms = performance.now() - t0;
    const after = [...perIntegration.values()].map((l) => l.slice(l.findIndex((v) => v === 'AUTHENTICATE' || v === 'LOGIN') + 1));
    const setup = new Set(['NAMESPACE', 'ENABLE', 'ID', 'COMPRESS']);
    const ours = after.map((l) => l.filter((v) => !setup.has(v)).length);
    console.log(
      `\n2. 50 integrations, nothing new (SYNC_CONCURRENCY=4): run ${ms.toFixed(0)} ms (goal < 3000), synced ${res.stats.synced}, imported ${res.stats.messagesImported}`,
    );
    console.log(
      `   commands per mailbox after login: ${Math.max(...ours)} by the sync (${[...new Set(after.map((l) => l.filter((v) => !setup.has(v)).join(' ')))].join(' | ')}), goal <= 2`,
    );
    console.log(
      `   plus imapflow's session setup: ${[...new Set(after.map((l) => l.filter((v) => setup.has(v)).join(' ')))].join(' | ')} (all after login: ${Math.max(...after.map((l) => l.length))})`,
    );
  } finally {
    await drop();
  }
}

async function bench3(d: Dovecot) {
  const box = d.takeMailbox();
  const payload = randomBytes(Math.floor(25 * 1024 * 1024 * 0.74))
    .toString('base64')
    .replace(/(.{76})/g, '$1\r\n');
  const raw = `From: Gros <gros@exemple.fr>\r\nSubject: 25 Mo\r\nMessage-ID: <big25@t>\r\nDate: ${new Date().toUTCString()}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nvoir PJ\r\n--b\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename="archive.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n${payload}\r\n--b--\r\n`;
  await appendMany(d, box, [raw]);
  const { db, drop } = await freshDb();
  try {
    const companyId = await company(db);
    await integration(db, companyId, d, box);
    global.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    const res = await runInboxSync(
      ctxFor(db, { MAX_MESSAGE_BYTES: String(26 * 1024 * 1024), MAX_ATTACHMENT_BYTES: String(25 * 1024 * 1024) }),
      { tls: { ca: d.cert } },
    );
    clearInterval(timer);
    peak = Math.max(peak, process.memoryUsage().rss);
    const [att] = await queryRows<{ n: number }>(
      db,
      sql`select coalesce(sum(octet_length(content)), 0)::int as n from message_attachments`,
    );
    console.log(
      `\n3. One ${(raw.length / 1048576).toFixed(1)} MB message imported (${res.stats.messagesImported} message, ${(att.n / 1048576).toFixed(1)} MB attachment stored)`,
    );
    console.log(
      `   RSS before ${(base / 1048576).toFixed(0)} MB, peak ${(peak / 1048576).toFixed(0)} MB, delta ${((peak - base) / 1048576).toFixed(0)} MB (${((peak - base) / raw.length).toFixed(1)}x the message)`,
    );
  } finally {
    await drop();
  }
}

const d = await startDovecot({ pool: 60 });
try {
  const only = process.argv[2];
  if (!only || only === '1' || only === '1b') await bench1(d, { loopback: only !== '1b', wan: only !== '1' });
  if (!only || only === '2') await bench2(d);
  if (!only || only === '3') await bench3(d);
} finally {
  await d.stop();
}
