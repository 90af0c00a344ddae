/**
 * `npm run demo`: a fresh embedded database (.data/demo-pglite) with a realistic French demo
 * company, then every job once, with a readable summary of each and where the emails went.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DateTime } from 'luxon';
import { parseConfig } from '../lib/config.js';
import { closeAllDbs, openDb } from '../db/client.js';
import { runtimeFromConfig } from '../lib/cron/runtime.js';
import { runJob } from '../lib/cron/run.js';
import { JOB_REGISTRY } from '../lib/jobs/registry.js';
import { createLogger } from '../lib/log.js';
import { summarise } from '../lib/local/summary.js';
import type { JobId } from '../lib/cron/jobs.js';
import { seedDemo } from './demo-data.js';

const DEMO_DIR = process.env.DEMO_PGLITE_DIR ?? '.data/demo-pglite';
const ORDER: JobId[] = ['inbox-sync', 'followups', 'overdue-reminders', 'account-deletions'];

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
  fs.rmSync(DEMO_DIR, { recursive: true, force: true });
  const config = parseConfig({ ...process.env, PGLITE_DIR: DEMO_DIR, DATABASE_URL: undefined, DATABASE_DRIVER: 'pglite', SCHEDULER: 'off' });
  const outbox = path.resolve(config.OUTBOX_DIR);
  const before = new Set(listFiles(outbox));
  const now = demoNow(new Date());
  console.log(`Lokario demo: embedded database in ${DEMO_DIR}, clock set to ${now.toISOString()} (${DateTime.fromJSDate(now, { zone: 'Europe/Paris' }).toFormat("cccc dd/MM/yyyy HH:mm 'Paris'", { locale: 'fr' })})\n`);
  const handle = await openDb({ driver: 'pglite', pgliteDir: DEMO_DIR, migrate: true });
  const ids = await seedDemo(handle.db, now);
  console.log(`Seeded: "Atelier Dupont Menuiserie" (company ${ids.companyId}): 5 clients, 3 quotes, 4 invoices (2 overdue, 1 partly paid), 3 tasks, 4 appointments;`);
  console.log(`        "Boulangerie Martin" (company ${ids.trialCompanyId}): expired trial, its only user's deletion is due; another user's deletion is in 5 days.\n`);

  const rt = runtimeFromConfig(config, {
    openDb: async () => ({ ...handle, close: async () => {} }),
    logger: createLogger({ level: 'error', destination: process.stderr }),
  });
  let failures = 0;
  for (const id of ORDER) {
    const { body } = await runJob(JOB_REGISTRY[id], 'cli', { dryRun: false, scope: {}, nowOverride: now }, rt);
    if (!body.success) failures++;
    console.log(`${summarise(body)}\n`);
  }
  const written = listFiles(outbox).filter((f) => !before.has(f));
  console.log(written.length ? `Emails written to ${path.relative(process.cwd(), outbox)}/ (${written.length}):` : 'No email was written.');
  for (const f of written) console.log(`  ${path.relative(process.cwd(), f)}`);
  console.log(`\nExplore it: PGLITE_DIR=${DEMO_DIR} SCHEDULER=off npm start   then   curl localhost:3000/cron/status`);
  await closeAllDbs();
  return failures ? 1 : 0;
}

function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.eml'))
    .map((d) => path.join(d.parentPath, d.name));
}

process.exitCode = await main();
