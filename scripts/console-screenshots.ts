/**
 * Regenerates docs/console-healthy.png and docs/console-problems.png: a throwaway database on the
 * local PostgreSQL (TEST_DATABASE_URL or postgres@127.0.0.1), seeded runs, `npm start` on it, and
 * headless Chromium (CHROMIUM_PATH, default /usr/bin/chromium) at phone width.
 *   npx tsx scripts/console-screenshots.ts
 */
import path from 'node:path';
import { sql } from 'drizzle-orm';
import puppeteer from 'puppeteer-core';
import { closeAllDbs, migrateDb, openDb, queryRows } from '../db/client.js';
import { adminQuery, urlFor } from '../devtools/pg-admin.js';
import { pauseIntegration, seedCompany, seedHealthyRuns, seedUnknownFollowup, seedUnknownReminder } from '../devtools/console-fixtures.js';
import { startLocalServer, stopLocalServer } from '../devtools/server.js';

const SECRET = 'screenshot-secret-0123456789abcdef';
const docs = path.resolve(import.meta.dirname, '../docs');
const name = `lokario_screens_${process.pid}`;

await adminQuery(`create database "${name}"`);
const url = urlFor(name);
try {
  await migrateDb({ driver: 'pg', url });
  const { db } = await openDb({ driver: 'pg', url });
  await seedHealthyRuns(db, new Date(), 7);
  const server = await startLocalServer({ PORT: '0', SCHEDULER: 'off', CRON_SECRET: SECRET, DATABASE_URL: url, LOG_LEVEL: 'warn' });
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 430, height: 900, deviceScaleFactor: 1 });
    await page.goto(`${server.url}/cron`);
    await page.type('#actor', 'Alice');
    await page.type('#password', SECRET);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    await page.screenshot({ path: path.join(docs, 'console-healthy.png'), fullPage: true });

    // problems: followups stopped firing 3 hours ago, inbox-sync failing, a paused mailbox, unknown sends
    await db.execute(sql`delete from cron_runs where job = 'followups' and started_at > now() - interval '3 hours'`);
    await db.execute(sql`update cron_runs set outcome = 'failed', error = 'database_error: Connection terminated unexpectedly'
      where job = 'inbox-sync' and started_at > now() - interval '40 minutes'`);
    const company = await seedCompany(db);
    const [row] = await queryRows<{ id: number }>(
      db,
      sql`
      insert into inbox_integrations (company_id, name, imap_server, imap_port, email_address, email_password)
      values (${company}, 'Accueil', 'imap.exemple.fr', 993, 'accueil@plomberie-martin.fr', 'x') returning id`,
    );
    await pauseIntegration(db, Number(row.id), 'Identifiants refusés (AUTHENTICATIONFAILED)');
    await seedUnknownFollowup(db, company, 'Facture F-2026-017 (1 250,00 €)');
    await seedUnknownReminder(db, company);
    await page.goto(`${server.url}/cron`);
    await page.screenshot({ path: path.join(docs, 'console-problems.png'), fullPage: true });
  } finally {
    await browser.close();
    await stopLocalServer(server);
  }
} finally {
  await closeAllDbs();
  await adminQuery(`drop database if exists "${name}" with (force)`);
}
console.log('docs/console-healthy.png, docs/console-problems.png written');
