/**
 * `npm run demo`: a fresh embedded database (.data/demo-pglite) with a realistic French demo
 * company (and, when Dovecot is installed, its mailbox on a throwaway local IMAP server), then every
 * job once, with a readable summary of each and where the emails went.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DateTime } from 'luxon';
import { parseConfig } from '../lib/config.js';
import { sql } from 'drizzle-orm';
import { closeAllDbs, openDb, queryRows, type Db } from '../db/client.js';
import { runtimeFromConfig } from '../lib/cron/runtime.js';
import { runJob } from '../lib/cron/run.js';
import { JOB_REGISTRY } from '../lib/jobs/registry.js';
import { createLogger } from '../lib/log.js';
import { summarise } from '../lib/local/summary.js';
import type { Job } from '../lib/cron/types.js';
import { createInboxSyncJob } from '../lib/jobs/inbox-sync/index.js';
import { dovecotBinary, startDovecot, type Dovecot } from '../devtools/dovecot.js';
import { createDemoIntegration, demoMailbox, seedDemo } from './demo-data.js';
import { loadDotEnv } from '../lib/local/dotenv.js';

const DEMO_DIR = process.env.DEMO_PGLITE_DIR ?? '.data/demo-pglite';
// the story: mail comes in, follow-ups go out, the trial expires, then the due account goes;
// any other registered job runs after them
const STORY: readonly string[] = ['inbox-sync', 'followups', 'overdue-reminders', 'account-deletions'];
const storyRank = (job: Job) => (STORY.includes(job.id) ? STORY.indexOf(job.id) : STORY.length);
// used only when ENCRYPTION_MASTER_KEY is unset: the demo mailbox password is stored encrypted, as in production
const DEMO_MASTER_KEY = 'lokario-demo-master-key-not-for-production';
const DEMO_MAILBOX = 'contact@atelier-dupont.fr';

type DemoMailbox = { dovecot: Dovecot; integrationId: number };

/**
 * The demo company's mailbox on a throwaway local Dovecot (when one is installed), filled with a
 * few French messages and wired as an IMAP integration. Returns null, saying why, otherwise.
 */
async function startDemoMailbox(db: Db, companyId: number, now: Date, masterKey: string): Promise<DemoMailbox | null> {
  if (!dovecotBinary()) {
    console.log('Mailbox: skipped (no `dovecot` binary found; `apt-get install dovecot-imapd` to see inbox-sync import mail).\n');
    return null;
  }
  const password = `demo-${Math.random().toString(36).slice(2, 10)}`;
  let dovecot: Dovecot;
  try {
    dovecot = await startDovecot({ users: { [DEMO_MAILBOX]: password }, pool: 0 });
  } catch (err) {
    console.log(`Mailbox: skipped (Dovecot did not start: ${(err as Error).message.split('\n')[0]}).\n`);
    return null;
  }
  const mails = demoMailbox(now, DEMO_MAILBOX);
  // each message with its own arrival time, shortly before the demo's clock
  for (const [i, m] of mails.entries())
    await dovecot.append(DEMO_MAILBOX, password, [m.raw], 'INBOX', new Date(now.getTime() - (i + 1) * 3_600_000));
  const integrationId = await createDemoIntegration(db, companyId, {
    host: dovecot.host,
    port: dovecot.port,
    user: DEMO_MAILBOX,
    password,
    masterKey,
  });
  console.log(
    `Mailbox: ${DEMO_MAILBOX} on a local Dovecot (127.0.0.1:${dovecot.port}, STARTTLS), ${mails.length} messages: a quote request from a new prospect, a client's reply to a quote email, a supplier newsletter.\n`,
  );
  return { dovecot, integrationId };
}

/** What inbox-sync made of the demo mailbox, one line per message. */
async function describeImport(db: Db, companyId: number): Promise<string> {
  const rows = await queryRows<{ from_email: string; is_client: boolean; subject: string | null; conversation_messages: number }>(
    db,
    sql`
    select m.from_email, c.subject,
           exists (select 1 from clients cl where cl.company_id = m.company_id and lower(cl.email) = lower(m.from_email)) as is_client,
           (select count(*)::int from inbox_messages x where x.conversation_id = m.conversation_id) as conversation_messages
    from inbox_messages m join conversations c on c.id = m.conversation_id
    where m.company_id = ${companyId} and m.is_from_client order by m.id`,
  );
  const w = Math.max(0, ...rows.map((r) => r.from_email.length));
  return rows
    .map(
      (r) =>
        `  mailbox: ${r.from_email.padEnd(w)}  → ${r.is_client ? 'client' : 'no client'}, ${
          r.conversation_messages > 1 ? `threaded into "${r.subject}" (${r.conversation_messages} messages)` : 'new conversation'
        }`,
    )
    .join('\n');
}

/** Follow-ups go out on weekdays 08:00–19:00 (Paris): run the demo at a time when they can. */
function demoNow(real: Date): Date {
  let t = DateTime.fromJSDate(real, { zone: 'Europe/Paris' });
  const inWindow = t.weekday <= 5 && t.hour >= 8 && t.hour < 19;
  if (inWindow) return real;
  t = t.hour >= 19 || t.weekday > 5 ? t.plus({ days: 1 }) : t;
  while (t.weekday > 5) t = t.plus({ days: 1 });
  return t.set({ hour: 10, minute: 0, second: 0, millisecond: 0 }).toJSDate();
}

async function main() {
  loadDotEnv();
  fs.rmSync(DEMO_DIR, { recursive: true, force: true });
  const masterKey = process.env.ENCRYPTION_MASTER_KEY || DEMO_MASTER_KEY;
  const config = parseConfig({
    ...process.env,
    PGLITE_DIR: DEMO_DIR,
    DATABASE_URL: undefined,
    DATABASE_DRIVER: 'pglite',
    SCHEDULER: 'off',
    ENCRYPTION_MASTER_KEY: masterKey,
  });
  const outbox = path.resolve(config.OUTBOX_DIR);
  // deterministic Message-IDs: a re-run rewrites the same file names, so "written now" is by time
  const startedMs = Date.now() - 1_000;
  const now = demoNow(new Date());
  console.log(
    `Lokario demo: embedded database in ${DEMO_DIR}, clock set to ${now.toISOString()} (${DateTime.fromJSDate(now, { zone: 'Europe/Paris' }).toFormat("cccc dd/MM/yyyy HH:mm 'Paris'", { locale: 'fr' })})\n`,
  );
  const handle = await openDb({ driver: 'pglite', pgliteDir: DEMO_DIR, migrate: true });
  const ids = await seedDemo(handle.db, now);
  console.log(
    `Seeded: "Atelier Dupont Menuiserie" (company ${ids.companyId}): 5 clients, 3 quotes, 4 invoices (2 overdue, 1 partly paid), 3 tasks, 4 appointments, the email that sent quote DEV-2026-042;`,
  );
  console.log(
    `        "Boulangerie Martin" (company ${ids.trialCompanyId}): expired trial, its only user's deletion is due; another user's deletion is in 5 days.\n`,
  );
  const mailbox = await startDemoMailbox(handle.db, ids.companyId, now, masterKey);

  const rt = runtimeFromConfig(config, {
    openDb: async () => ({ ...handle, close: async () => {} }),
    logger: createLogger({ level: 'error', destination: process.stderr }),
  });
  let failures = 0;
  try {
    for (const registered of [...JOB_REGISTRY.jobs].sort((a, b) => storyRank(a) - storyRank(b))) {
      const id = registered.id;
      // the demo Dovecot's certificate is self-signed: trust it for this run only
      const job: Job = id === 'inbox-sync' && mailbox ? createInboxSyncJob({ tls: { ca: mailbox.dovecot.cert } }) : registered;
      const { body } = await runJob(job, 'cli', { dryRun: false, scope: {}, nowOverride: now }, rt);
      if (!body.success) failures++;
      console.log(summarise(body));
      if (id === 'inbox-sync' && mailbox) console.log(await describeImport(handle.db, ids.companyId));
      console.log('');
    }
  } finally {
    if (mailbox) {
      await mailbox.dovecot.stop();
      // its server is gone: keep `npm start` on this database from retrying a dead mailbox every 5 minutes
      await handle.db.execute(sql`update inbox_integrations set is_active = false where id = ${mailbox.integrationId}`);
    }
  }
  const written = listFiles(outbox).filter((f) => fs.statSync(f).mtimeMs >= startedMs);
  console.log(written.length ? `Emails written to ${path.relative(process.cwd(), outbox)}/ (${written.length}):` : 'No email was written.');
  for (const f of written) console.log(`  ${path.relative(process.cwd(), f)}`);
  console.log(`\nExplore it: PGLITE_DIR=${DEMO_DIR} SCHEDULER=off npm start   then   curl localhost:3000/cron/status`);
  await closeAllDbs();
  return failures ? 1 : 0;
}

function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.eml'))
    .map((d) => path.join(d.parentPath, d.name));
}

process.exitCode = await main();
