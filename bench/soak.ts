/**
 * Soak test of the local server (issue 7), not part of the test suite.
 *
 *   npm run bench:soak                    (5 minutes)
 *   npm run bench:soak -- --seconds 30    (a quick run)
 *   options: --every <s> (scheduler period, default 2), --keep (keep the database)
 *
 * `npm start`'s entry point as a child process with its scheduler on, every job every 2 seconds,
 * on a fresh database of the real PostgreSQL (TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432),
 * an SMTP sink as SMTP_URL and, when Dovecot is installed, real IMAP mailboxes. This process writes
 * a steady trickle of new work (overdue invoices, quotes whose follow-up is due, appointments,
 * tasks, users asking for deletion, new mail) while the jobs run. At the end: every duplicate
 * count (what a unique key allows vs what exists, and emails per Message-ID at the SMTP server),
 * failed runs, work left undone, runs per job, and the server's RSS over time.
 * Exit code 1 when anything is duplicated, failed or missing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'drizzle-orm';
import { closeAllDbs, migrateDb, openDb, queryRows, type Db } from '../db/client.js';
import { encryptSecret } from '../lib/crypto/fernet.js';
import { startSmtpSink } from '../devtools/smtp.js';
import { hasDovecot, startDovecot, type Dovecot } from '../devtools/dovecot.js';
import { ADMIN_URL, adminQuery, urlFor } from '../devtools/pg-admin.js';

const root = path.resolve(import.meta.dirname, '..');
const COMPANIES = 12;
// one company in three has an IMAP mailbox: most tenants of the real product have none
const MAILBOX_EVERY = 3;
const CLIENTS_PER_COMPANY = 5;
// one tick of new work per second: ~300 items of each kind in 5 minutes
const TRICKLE_MS = 1_000;
// after the trickle stops, the jobs get this long to finish what was written last
const DRAIN_MS = 20_000;
const RSS_SAMPLE_MS = 1_000;
const SECRET = 'soak-cron-secret-0123456789abcdef';
const MASTER_KEY = 'soak-encryption-master-key';
const DAY = 86_400_000;
const HOUR = 3_600_000;

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '300' },
    every: { type: 'string', default: '2' },
    keep: { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
const EVERY = Number(args.every);
if (!Number.isFinite(SECONDS) || SECONDS < 5 || !Number.isInteger(EVERY) || EVERY < 1) {
  console.error('usage: npm run bench:soak -- [--seconds 300] [--every 2] [--keep]');
  process.exit(2);
}

type Company = { id: number; ownerId: number; clientIds: number[]; typeId: number; mailbox?: { user: string; password: string } };
type Written = {
  invoices: number;
  quotes: number;
  appointments: number;
  overdueTasks: number;
  criticalTasks: number;
  deletionsDue: number;
  deletionsSoon: number;
  mails: number;
  mailDuplicates: number;
};

function readRssKb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;

async function startServer(env: Record<string, string>, logFile: string): Promise<{ url: string; child: ChildProcess }> {
  const log = fs.createWriteStream(logFile);
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/server.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ENV_FILE: 'none', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    log.write(d);
    if (out.length < 10_000) out += d;
  });
  child.stderr!.on('data', (d) => {
    log.write(d);
    if (out.length < 10_000) out += d;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 60_000);
    child.stdout!.on('data', () => {
      const m = /listening on (http:\/\/localhost:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out}`));
    });
  });
  return { url, child };
}

async function seedCompanies(db: Db, dovecot: Dovecot | null): Promise<Company[]> {
  const out: Company[] = [];
  for (let i = 1; i <= COMPANIES; i++) {
    const [c] = await queryRows<{ id: number }>(
      db,
      sql`insert into companies (code, name, slug) values (${`S${i}`}, ${`Soak SARL ${i}`}, ${`soak-${i}`}) returning id`,
    );
    const settings = {
      company_info: { email: `contact@soak${i}.example.fr`, phone: '01 23 45 67 89', timezone: 'Europe/Paris' },
      billing: { auto_followups: { quotes_enabled: true, invoices_enabled: true } },
      // every day, all day: the soak runs whatever the hour
      followups: { send_window: { start: '00:00', end: '23:59', weekdays: [1, 2, 3, 4, 5, 6, 7] } },
    };
    await db.execute(sql`insert into company_settings (company_id, settings) values (${c.id}, ${JSON.stringify(settings)}::jsonb)`);
    await db.execute(
      sql`insert into subscriptions (company_id, plan, status, stripe_subscription_id, amount) values (${c.id}, 'PROFESSIONAL', 'ACTIVE', ${`sub_soak_${i}`}, '49.00')`,
    );
    const [owner] = await queryRows<{ id: number }>(
      db,
      sql`insert into users (email, full_name, role, company_id) values (${`owner@soak${i}.example.fr`}, ${`Gérant ${i}`}, 'owner', ${c.id}) returning id`,
    );
    const clientIds: number[] = [];
    for (let k = 1; k <= CLIENTS_PER_COMPANY; k++) {
      const [cl] = await queryRows<{ id: number }>(
        db,
        sql`insert into clients (company_id, name, email) values (${c.id}, ${`Client ${i}-${k}`}, ${`client${k}@soak${i}-clients.example.fr`}) returning id`,
      );
      clientIds.push(cl.id);
    }
    const [type] = await queryRows<{ id: number }>(
      db,
      sql`insert into appointment_types (company_id, name, duration_minutes) values (${c.id}, 'Visite', 60) returning id`,
    );
    const company: Company = { id: c.id, ownerId: owner.id, clientIds, typeId: type.id };
    if (dovecot && i % MAILBOX_EVERY === 1) {
      company.mailbox = dovecot.takeMailbox();
      await db.execute(sql`
        insert into inbox_integrations (company_id, integration_type, name, imap_server, imap_port, email_address, email_password, use_ssl)
        values (${c.id}, 'imap', 'Boîte', ${dovecot.host}, ${dovecot.port}, ${company.mailbox.user}, ${encryptSecret(company.mailbox.password, MASTER_KEY)}, false)`);
    }
    out.push(company);
  }
  return out;
}

function mail(id: string, from: string, to: string, subject: string, inReplyTo?: string): string {
  const headers = [
    `From: ${from}`,
    `To: ${to}`,
    `Subject: ${subject}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${id}>`,
    ...(inReplyTo ? [`In-Reply-To: <${inReplyTo}>`, `References: <${inReplyTo}>`] : []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
  ];
  return `${headers.join('\r\n')}\r\n\r\nBonjour, pourriez-vous me rappeler au sujet du chantier ? Merci.\r\n`;
}

/** One tick of new work, in one company (round robin). Everything is due now or within hours. */
async function trickle(
  db: Db,
  dovecot: Dovecot | null,
  c: Company,
  tick: number,
  w: Written,
  lastMail: Map<number, string>,
): Promise<void> {
  const now = Date.now();
  const at = (ms: number) => new Date(now + ms).toISOString();
  const client = c.clientIds[tick % c.clientIds.length];
  // an invoice 10 days overdue: EN_RETARD + notification now, follow-up step 1 (due date + 7 days) due now
  await db.execute(sql`
    insert into invoices (company_id, client_id, number, status, issue_date, sent_at, due_date, total_ttc, client_name, seller_name)
    values (${c.id}, ${client}, ${`FAC-SOAK-${tick}`}, 'ENVOYEE', ${at(-40 * DAY)}, ${at(-40 * DAY)}, ${at(-10 * DAY)}, ${(100 + (tick % 900)).toFixed(2)}, 'Client', 'Soak')`);
  w.invoices++;
  // an appointment in a few hours: its 24 h reminder is due now
  await db.execute(sql`
    insert into appointments (company_id, client_id, type_id, employee_id, start_date_time, end_date_time, status)
    values (${c.id}, ${client}, ${c.typeId}, ${c.ownerId}, ${at((2 + (tick % 18)) * HOUR)}, ${at((3 + (tick % 18)) * HOUR)}, 'SCHEDULED')`);
  w.appointments++;
  if (tick % 2 === 0) {
    // a quote sent 8 days ago, unanswered: its follow-up step 1 (7 days) is due now
    await db.execute(sql`
      insert into quotes (company_id, client_id, number, status, sent_at, valid_until, total_ttc)
      values (${c.id}, ${client}, ${`DEV-SOAK-${tick}`}, 'ENVOYE', ${at(-8 * DAY)}, ${at(30 * DAY)}, '1500.00')`);
    w.quotes++;
  }
  if (tick % 3 === 0) {
    // a task overdue since two days ago (overdue counts in whole days of the company's calendar), a critical one due tomorrow
    await db.execute(sql`
      insert into tasks (company_id, title, assigned_to_id, status, priority, due_date) values
      (${c.id}, ${`En retard ${tick}`}, ${c.ownerId}, 'A_FAIRE', 'normal', ${at(-2 * DAY)}),
      (${c.id}, ${`Critique ${tick}`}, ${c.ownerId}, 'EN_COURS', 'critical', ${at(DAY)})`);
    w.overdueTasks++;
    w.criticalTasks++;
  }
  if (tick % 5 === 0) {
    // an employee whose deletion is due (the owner stays: only the user goes)
    await db.execute(sql`
      insert into users (email, full_name, role, company_id, deletion_requested_at, deletion_scheduled_at)
      values (${`partant${tick}@soak.example.fr`}, ${`Partant ${tick}`}, 'user', ${c.id}, ${at(-30 * DAY)}, ${at(-1000)})`);
    w.deletionsDue++;
  }
  if (tick % 5 === 2) {
    // deletion in 3 days: the J-7 reminder is due now
    await db.execute(sql`
      insert into users (email, full_name, role, company_id, deletion_requested_at, deletion_scheduled_at)
      values (${`bientot${tick}@soak.example.fr`}, ${`Bientôt ${tick}`}, 'user', ${c.id}, ${at(-27 * DAY)}, ${at(3 * DAY)})`);
    w.deletionsSoon++;
  }
  if (dovecot && c.mailbox) {
    const id = `soak-${tick}@prospects.example.fr`;
    const previous = lastMail.get(c.id);
    // every third message answers the previous one in the same mailbox (threading under load)
    const raw = mail(
      id,
      `Prospect ${tick} <prospect${tick % 40}@prospects.example.fr>`,
      c.mailbox.user,
      `Chantier ${tick}`,
      tick % 3 === 0 ? previous : undefined,
    );
    // every tenth message is delivered twice (a forward rule, a resend): imported once
    const copies = tick % 10 === 0 ? [raw, raw] : [raw];
    await dovecot.append(c.mailbox.user, c.mailbox.password, copies);
    lastMail.set(c.id, id);
    w.mails++;
    w.mailDuplicates += copies.length - 1;
  }
}

type Check = { name: string; value: number };

async function duplicateChecks(db: Db, sinkIds: (string | undefined)[]): Promise<Check[]> {
  const ids = sinkIds.filter((x): x is string => !!x);
  const [r] = await queryRows<Record<string, number>>(
    db,
    sql`select
    (select count(*) - count(distinct (company_id, type, source_type, source_id, coalesce(dedupe_key, ''))) from notifications)::int as notifications,
    (select count(*) - count(distinct (followup_id, step)) from followup_history)::int as followup_history,
    (select count(*) - count(distinct (company_id, source_type, source_id, type)) from followups)::int as followups,
    (select count(*) - count(distinct (appointment_id, hours_before, start_date_time)) from appointment_reminders)::int as appointment_reminders,
    (select count(*) - count(distinct (company_id, external_id)) from inbox_messages where external_id is not null)::int as inbox_messages,
    (select count(*) - count(distinct user_id) from account_deletion_log)::int as account_deletion_log`,
  );
  return [
    { name: 'emails at the SMTP server per Message-ID', value: ids.length - new Set(ids).size + (sinkIds.length - ids.length) },
    { name: 'notifications per dedupe key', value: r.notifications },
    { name: 'follow-up history per (follow-up, step)', value: r.followup_history },
    { name: 'follow-ups per source', value: r.followups },
    { name: 'appointment reminders per (appointment, offset, start)', value: r.appointment_reminders },
    { name: 'imported emails per (company, Message-ID)', value: r.inbox_messages },
    { name: 'deletion log rows per user', value: r.account_deletion_log },
  ];
}

/** What was written vs what the jobs did with it: [expected, done]. */
async function completeness(db: Db, w: Written, sinkCount: number): Promise<[string, number, number][]> {
  const [r] = await queryRows<Record<string, number>>(
    db,
    sql`select
    (select count(*) from invoices where number like 'FAC-SOAK-%' and status = 'EN_RETARD')::int as overdue,
    (select count(*) from notifications where type = 'INVOICE_OVERDUE')::int as invoice_notifications,
    (select count(*) from followup_history h join followups f on f.id = h.followup_id where h.delivery = 'sent' and f.type = 'FACTURE_IMPAYEE')::int as invoice_followups,
    (select count(*) from followup_history h join followups f on f.id = h.followup_id where h.delivery = 'sent' and f.type = 'DEVIS_NON_REPONDU')::int as quote_followups,
    (select count(*) from appointment_reminders where delivery = 'sent')::int as reminders,
    (select count(*) from notifications where type = 'TASK_OVERDUE')::int as task_overdue,
    (select count(*) from notifications where type = 'TASK_CRITICAL')::int as task_critical,
    (select count(*) from account_deletion_log)::int as deleted,
    (select count(*) from users where email like 'bientot%' and deletion_reminder_sent_at is not null)::int as deletion_reminders,
    (select count(*) from inbox_messages where external_id like 'soak-%')::int as imported`,
  );
  const emails = w.invoices + w.quotes + w.appointments + w.deletionsDue + w.deletionsSoon;
  return [
    ['invoices marked EN_RETARD', w.invoices, r.overdue],
    ['INVOICE_OVERDUE notifications', w.invoices, r.invoice_notifications],
    ['invoice follow-ups sent', w.invoices, r.invoice_followups],
    ['quote follow-ups sent', w.quotes, r.quote_followups],
    ['appointment reminders sent', w.appointments, r.reminders],
    ['TASK_OVERDUE notifications', w.overdueTasks, r.task_overdue],
    ['TASK_CRITICAL notifications', w.criticalTasks, r.task_critical],
    ['accounts deleted (and logged)', w.deletionsDue, r.deleted],
    ['deletion reminders sent', w.deletionsSoon, r.deletion_reminders],
    ['emails imported (distinct Message-IDs)', w.mails, r.imported],
    ['emails received by the SMTP server', emails, sinkCount],
  ];
}

async function main() {
  const dbName = `lokario_soak_${Date.now().toString(36)}`;
  const url = urlFor(dbName);
  await adminQuery(`create database "${dbName}"`);
  const logFile = path.join(os.tmpdir(), `${dbName}.server.log`);
  let dovecot: Dovecot | null = null;
  const sink = await startSmtpSink();
  let server: { url: string; child: ChildProcess } | undefined;
  let exitCode = 0;
  try {
    const t0 = Date.now();
    await migrateDb({ driver: 'pg', url });
    console.log(`database ${dbName} on ${new URL(ADMIN_URL).host}, migrated in ${Date.now() - t0} ms`);
    if (hasDovecot()) dovecot = await startDovecot({ pool: Math.ceil(COMPANIES / MAILBOX_EVERY) + 1 });
    const { db } = await openDb({ driver: 'pg', url, poolMax: 4 });
    const companies = await seedCompanies(db, dovecot);
    const withMailbox = companies.filter((c) => c.mailbox).length;
    console.log(
      `seeded ${COMPANIES} companies (${CLIENTS_PER_COMPANY} clients each), ${dovecot ? `${withMailbox} IMAP mailboxes on a local Dovecot` : 'no mailbox (Dovecot is not installed: inbox-sync runs with nothing to sync)'}; SMTP sink ${sink.url}`,
    );

    const env: Record<string, string> = {
      PORT: '0',
      DATABASE_URL: url,
      SCHEDULER: 'on',
      SCHEDULER_EVERY_SECONDS: String(EVERY),
      SMTP_URL: sink.url,
      CRON_SECRET: SECRET,
      ENCRYPTION_MASTER_KEY: MASTER_KEY,
      LOG_LEVEL: 'warn',
    };
    if (dovecot) {
      const ca = path.join(os.tmpdir(), `${dbName}.dovecot-ca.pem`);
      fs.writeFileSync(ca, dovecot.cert);
      env.NODE_EXTRA_CA_CERTS = ca;
    }
    server = await startServer(env, logFile);
    const pid = server.child.pid!;
    console.log(
      `server pid ${pid} at ${server.url}, scheduler every ${EVERY} s; trickle for ${SECONDS} s, then ${DRAIN_MS / 1000} s of drain; server log: ${logFile}\n`,
    );

    const rss: { t: number; kb: number }[] = [];
    const started = Date.now();
    const sampler = setInterval(() => {
      const kb = readRssKb(pid);
      if (kb !== null) rss.push({ t: Date.now() - started, kb });
    }, RSS_SAMPLE_MS);
    const first = readRssKb(pid);
    if (first !== null) rss.push({ t: 0, kb: first });

    const written: Written = {
      invoices: 0,
      quotes: 0,
      appointments: 0,
      overdueTasks: 0,
      criticalTasks: 0,
      deletionsDue: 0,
      deletionsSoon: 0,
      mails: 0,
      mailDuplicates: 0,
    };
    const lastMail = new Map<number, string>();
    let tick = 0;
    let nextReport = 30_000;
    while (Date.now() - started < SECONDS * 1000) {
      const tickStart = Date.now();
      tick++;
      await trickle(db, dovecot, companies[tick % companies.length], tick, written, lastMail);
      if (Date.now() - started >= nextReport) {
        nextReport += 30_000;
        const [{ runs, failed }] = await queryRows<{ runs: number; failed: number }>(
          db,
          sql`
          select count(*)::int as runs, count(*) filter (where outcome = 'failed')::int as failed from cron_runs`,
        );
        console.log(
          `  ${String(Math.round((Date.now() - started) / 1000)).padStart(4)} s  rss ${mb(rss.at(-1)?.kb ?? 0)}  runs ${runs} (failed ${failed})  emails ${sink.received.length}  ticks ${tick}`,
        );
      }
      await new Promise((r) => setTimeout(r, Math.max(0, TRICKLE_MS - (Date.now() - tickStart))));
    }
    const trickleEnd = Date.now();
    // drain: until everything written is done, or DRAIN_MS
    let done = await completeness(db, written, sink.received.length);
    while (Date.now() - trickleEnd < DRAIN_MS && done.some(([, want, got]) => got < want)) {
      await new Promise((r) => setTimeout(r, 1_000));
      done = await completeness(db, written, sink.received.length);
    }
    clearInterval(sampler);
    const endKb = readRssKb(pid);
    if (endKb !== null) rss.push({ t: Date.now() - started, kb: endKb });

    const exited = new Promise<number | null>((r) => server!.child.once('exit', (code) => r(code)));
    server.child.kill('SIGINT');
    const serverExit = await exited;
    server = undefined;

    const dupes = await duplicateChecks(
      db,
      sink.received.map((m) => m.messageId),
    );
    done = await completeness(db, written, sink.received.length);
    // does a run get slower as the tables grow? average duration in the first and the last minute of trickle
    const trend = await queryRows<{ job: string; first_ms: number | null; last_ms: number | null }>(
      db,
      sql`
      with r as (select job, started_at, extract(epoch from finished_at - started_at) * 1000 as ms,
                        extract(epoch from started_at - min(started_at) over ()) as t from cron_runs where outcome <> 'skipped')
      select job, round(avg(ms) filter (where t < 60))::int as first_ms,
             round(avg(ms) filter (where t >= ${SECONDS - 60} and t < ${SECONDS}))::int as last_ms
      from r group by job order by job`,
    );
    const runs = await queryRows<{ job: string; outcome: string; n: number; avg_ms: number | null; max_ms: number | null }>(
      db,
      sql`
      select job, outcome::text, count(*)::int as n,
             round(avg(extract(epoch from finished_at - started_at) * 1000))::int as avg_ms,
             round(max(extract(epoch from finished_at - started_at) * 1000))::int as max_ms
      from cron_runs group by job, outcome order by job, outcome`,
    );
    const failedRuns = await queryRows<{ job: string; error: string | null }>(
      db,
      sql`select job, error from cron_runs where outcome = 'failed' order by started_at limit 5`,
    );
    const log = fs.readFileSync(logFile, 'utf8').split('\n');
    const errorLines = log.filter((l) => /"level":(50|60)/.test(l)).length;
    const warnLines = log.filter((l) => /"level":40/.test(l)).length;

    const elapsed = (Date.now() - started) / 1000;
    console.log(
      `\n== soak summary: ${elapsed.toFixed(0)} s (${SECONDS} s of trickle, ${tick} ticks), scheduler every ${EVERY} s, ${COMPANIES} companies${dovecot ? `, ${withMailbox} mailboxes` : ''}`,
    );
    console.log('\nwritten by the bench:');
    console.log(
      `  ${written.invoices} overdue invoices, ${written.quotes} quotes due for a follow-up, ${written.appointments} appointments, ${written.overdueTasks} overdue + ${written.criticalTasks} critical tasks,`,
    );
    console.log(
      `  ${written.deletionsDue} deletions due, ${written.deletionsSoon} deletions in 3 days, ${written.mails} emails into mailboxes (${written.mailDuplicates} delivered twice)`,
    );

    console.log('\nduplicate effects (count − distinct; must be 0):');
    const w1 = Math.max(...dupes.map((d) => d.name.length));
    for (const d of dupes) console.log(`  ${d.name.padEnd(w1)}  ${d.value}${d.value ? '  <-- DUPLICATES' : ''}`);

    console.log('\nwork done (expected / done):');
    const w2 = Math.max(...done.map(([n]) => n.length));
    for (const [n, want, got] of done)
      console.log(`  ${n.padEnd(w2)}  ${String(want).padStart(5)} / ${String(got).padEnd(5)}${got !== want ? '  <-- MISMATCH' : ''}`);

    console.log('\nruns per job (cron_runs, trigger scheduler):');
    const byJob = new Map<string, string[]>();
    for (const r of runs)
      byJob.set(r.job, [
        ...(byJob.get(r.job) ?? []),
        `${r.outcome} ${r.n}${r.avg_ms !== null && r.outcome !== 'skipped' ? ` (avg ${r.avg_ms} ms, max ${r.max_ms} ms)` : ''}`,
      ]);
    for (const [job, parts] of byJob) {
      const t = trend.find((x) => x.job === job);
      console.log(
        `  ${job.padEnd(18)}  ${parts.join(', ')}${t && SECONDS >= 120 ? `; first minute avg ${t.first_ms} ms, last minute ${t.last_ms} ms` : ''}`,
      );
    }
    const failed = runs.filter((r) => r.outcome === 'failed').reduce((a, r) => a + r.n, 0);
    console.log(
      `  failed runs: ${failed}${failedRuns.length ? `  e.g. ${failedRuns.map((f) => `${f.job}: ${f.error}`).join(' | ')}` : ''}`,
    );

    const kbs = rss.map((s) => s.kb);
    const at = (frac: number) => rss[Math.min(rss.length - 1, Math.floor(frac * (rss.length - 1)))];
    const minuteOne = rss.find((s) => s.t >= 60_000) ?? at(0.2);
    console.log('\nserver RSS (VmRSS, sampled every second):');
    // least-squares slope after the first minute (warm-up: JIT, pools, caches)
    const steady = rss.filter((x) => x.t >= 60_000);
    const slope = (() => {
      if (steady.length < 10) return null;
      const n = steady.length;
      const mx = steady.reduce((a, x) => a + x.t, 0) / n;
      const my = steady.reduce((a, x) => a + x.kb, 0) / n;
      const num = steady.reduce((a, x) => a + (x.t - mx) * (x.kb - my), 0);
      const den = steady.reduce((a, x) => a + (x.t - mx) ** 2, 0);
      return den ? ((num / den) * 60_000) / 1024 : null; // MB per minute
    })();
    console.log(
      `  start ${mb(kbs[0])}, after 1 min ${mb(minuteOne.kb)}, at 50 % ${mb(at(0.5).kb)}, end ${mb(kbs.at(-1)!)}, max ${mb(Math.max(...kbs))}  (end/start ${(kbs.at(-1)! / kbs[0]).toFixed(2)}, end/1 min ${(kbs.at(-1)! / minuteOne.kb).toFixed(2)})`,
    );
    if (slope !== null)
      console.log(
        `  trend after the first minute: ${slope >= 0 ? '+' : ''}${slope.toFixed(2)} MB/min (least squares over ${steady.length} samples)`,
      );
    console.log(`\nserver: exit code ${serverExit} on SIGINT; log lines: ${errorLines} error, ${warnLines} warn`);

    const dupTotal = dupes.reduce((a, d) => a + d.value, 0);
    const missing = done.filter(([, want, got]) => got !== want).length;
    const ok = dupTotal === 0 && failed === 0 && missing === 0 && serverExit === 0;
    console.log(`\n${ok ? 'PASS' : 'FAIL'}: ${dupTotal} duplicate effects, ${failed} failed runs, ${missing} mismatched counts`);
    exitCode = ok ? 0 : 1;
  } finally {
    if (server) server.child.kill('SIGINT');
    await closeAllDbs();
    await sink.close();
    await dovecot?.stop();
    if (!args.keep) await adminQuery(`drop database if exists "${dbName}" with (force)`).catch(() => {});
    else console.log(`kept database ${dbName}`);
  }
  return exitCode;
}

process.exitCode = await main();
