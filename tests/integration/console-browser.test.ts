import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { queryRows } from '../../db/client.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { createIntegration, MASTER_KEY, messagesOf, simpleMail } from '../helpers/inbox-fixtures.js';
import { pauseIntegration, seedCompany, seedHealthyRuns, seedUnknownFollowup } from '../../devtools/console-fixtures.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startLocalServer, stopLocalServer, type LocalServer } from '../../devtools/server.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';

/**
 * The console in a real browser (headless Chromium from the system package, driven by
 * puppeteer-core) against `npm start` on a real PostgreSQL database and a real Dovecot.
 */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
const SECRET = 'console-browser-secret-0123456789';
const XSS_LABEL = 'Facture F-2026-017 <script>window.__pwned = 1</script>';

describeWithService(hasPostgres() && hasDovecot() && hasChromium, 'PostgreSQL, Dovecot and Chromium')(
  'operator console in a real browser',
  () => {
    let db: TestDatabase;
    let dovecot: Dovecot;
    let server: LocalServer;
    let browser: Browser;
    let page: Page;
    let integrationId: number;
    let companyId: number;
    let historyId: number;
    let outbox: string;

    beforeAll(async () => {
      db = await createTestDatabase('consolebrowser');
      dovecot = await startDovecot({ pool: 2 });
      const box = dovecot.takeMailbox();
      await dovecot.append(box.user, box.password, [simpleMail('console-1@exemple.fr', { subject: 'Demande de devis' })]);
      companyId = await seedCompany(db.handle.db);
      integrationId = await createIntegration(db.handle.db, companyId, dovecot, box.user, box.password);
      await pauseIntegration(db.handle.db, integrationId);
      ({ historyId } = await seedUnknownFollowup(db.handle.db, companyId, XSS_LABEL));
      await seedHealthyRuns(db.handle.db, new Date(), 2);
      outbox = fs.mkdtempSync(path.join(os.tmpdir(), 'lokario-console-outbox-'));
      server = await startLocalServer({
        PORT: '0',
        SCHEDULER: 'off',
        CRON_SECRET: SECRET,
        DATABASE_URL: db.url,
        ENCRYPTION_MASTER_KEY: MASTER_KEY,
        OUTBOX_DIR: outbox,
        LOG_LEVEL: 'warn',
        NODE_EXTRA_CA_CERTS: path.join(dovecot.dir, 'cert.pem'),
      });
      browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
      });
      page = await browser.newPage();
      await page.setViewport({ width: 420, height: 900 }); // a phone
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      if (server) await stopLocalServer(server);
      await dovecot?.stop();
      await db?.drop();
      if (outbox) fs.rmSync(outbox, { recursive: true, force: true });
    });

    const url = (p = '/cron') => `${server.url}${p}`;

    it('refuses a wrong password (slowed down, no cookie) and shows the form again', async () => {
      await page.goto(url());
      await page.type('#actor', 'Alice');
      await page.type('#password', 'not-the-secret-at-all');
      const started = Date.now();
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(400); // the first failure waits 0.5 s
      expect(await page.$eval('[role=alert]', (e) => e.textContent)).toContain('Mot de passe incorrect');
      expect(await page.cookies()).toEqual([]);
    });

    it('signs in with CRON_SECRET: an HttpOnly, SameSite=Strict cookie; every job shown; headers set', async () => {
      await page.goto(url());
      await page.type('#actor', 'Alice');
      await page.type('#password', SECRET);
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
      const cookies = await page.cookies();
      expect(cookies).toHaveLength(1);
      expect(cookies[0]).toMatchObject({ name: 'lokario_console', httpOnly: true, sameSite: 'Strict' });
      expect(cookies[0].expires * 1000 - Date.now()).toBeGreaterThan(11.9 * 3600_000);
      const jobs = await page.$$eval('article.job', (els) => els.map((e) => e.getAttribute('data-job')));
      expect(jobs.sort()).toEqual(JOB_REGISTRY.jobs.map((j) => j.id).sort());
      expect(await page.$eval('header', (e) => e.textContent)).toContain('Alice');
      const res = await fetch(url(), { headers: { cookie: `lokario_console=${cookies[0].value}` } });
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
      expect(res.headers.get('content-security-policy')).not.toMatch(/script-src/);
    });

    it('shows a subject containing <script> as text, and runs no script at all', async () => {
      const subject = await page.$eval(`tr[data-send="followup_step:${historyId}"] td.subject`, (e) => e.textContent);
      expect(subject).toContain('<script>window.__pwned = 1</script>');
      expect(await page.evaluate(() => document.querySelectorAll('script').length)).toBe(0);
      expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    });

    it('refuses an action without the CSRF token (and with a wrong one), changing nothing', async () => {
      const [cookie] = await page.cookies();
      for (const csrf of [undefined, 'forged-token']) {
        const body = new URLSearchParams({ op: 'resume', integration: String(integrationId), confirm: 'yes', ...(csrf ? { csrf } : {}) });
        const res = await fetch(url(), {
          method: 'POST',
          redirect: 'manual',
          body,
          headers: { cookie: `lokario_console=${cookie.value}`, 'content-type': 'application/x-www-form-urlencoded' },
        });
        expect(res.status).toBe(403);
      }
      const [row] = await queryRows<{ last_sync_status: string }>(
        db.handle.db,
        sql`select last_sync_status from inbox_integrations where id = ${integrationId}`,
      );
      expect(row.last_sync_status).toBe('paused');
    });

    it('resumes the paused mailbox; the next inbox-sync run (started from the console) syncs it', async () => {
      const row = `tr[data-integration="${integrationId}"]`;
      expect(await page.$eval(row, (e) => e.textContent)).toContain('suspendue');
      await page.click(`${row} input[name=confirm]`);
      await Promise.all([page.waitForNavigation(), page.click(`${row} button[type=submit]`)]);
      expect(await page.$eval('[role=status]', (e) => e.textContent)).toContain('Reprise d’une boîte mail');
      expect(await page.$(row)).toBeNull();

      const card = 'article[data-job="inbox-sync"]';
      const forms = await page.$$(`${card} form`);
      const runNow = forms[forms.length - 1];
      await (await runNow.$('input[name=confirm]'))!.click();
      await Promise.all([page.waitForNavigation(), (await runNow.$('button'))!.click()]);
      expect(await page.$eval('[role=status]', (e) => e.textContent)).toContain('terminée');
      const [after] = await queryRows<{ last_sync_status: string; consecutive_failures: number }>(
        db.handle.db,
        sql`
      select last_sync_status, consecutive_failures from inbox_integrations where id = ${integrationId}`,
      );
      expect(after).toEqual({ last_sync_status: 'success', consecutive_failures: 0 });
      expect((await messagesOf(db.handle.db, companyId)).map((m) => m.external_id)).toEqual(['console-1@exemple.fr']);
      const actions = await queryRows<{ actor: string; action: string; target: string; details: string }>(
        db.handle.db,
        sql`
      select actor, action, target, details::text from operator_actions order by id`,
      );
      expect(actions.map((a) => [a.actor, a.action, a.target])).toEqual([
        ['console:Alice', 'resume_integration', `inbox_integration:${integrationId}`],
        ['console:Alice', 'run_job', 'job:inbox-sync'],
      ]);
      expect(actions.map((a) => a.details).join(' ')).not.toContain(SECRET);
    });

    it('a dry run shows the plan and changes nothing', async () => {
      await page.goto(url());
      const form = (await page.$$('article[data-job="followups"] form'))[0];
      await Promise.all([page.waitForNavigation(), (await form.$('button'))!.click()]);
      expect(await page.$eval('[role=status]', (e) => e.textContent)).toContain('Simulation');
      expect(await page.$eval('main', (e) => e.textContent)).toContain('rien n’a été fait');
      const [{ n }] = await queryRows<{ n: number }>(
        db.handle.db,
        sql`select count(*)::int as n from cron_runs where trigger = 'console' and dry_run`,
      );
      expect(n).toBe(1);
    });

    it('resolves the unknown send as "sent": the history row is sent, the follow-up goes on, the log shows it', async () => {
      await page.goto(url());
      const row = `tr[data-send="followup_step:${historyId}"]`;
      const sentForm = (await page.$$(`${row} form`))[0];
      await (await sentForm.$('input[name=confirm]'))!.click();
      await Promise.all([page.waitForNavigation(), (await sentForm.$('button'))!.click()]);
      expect(await page.$(row)).toBeNull();
      const [h] = await queryRows<{ delivery: string; status: string }>(
        db.handle.db,
        sql`
      select h.delivery::text, f.status::text from followup_history h join followups f on f.id = h.followup_id where h.id = ${historyId}`,
      );
      expect(h).toEqual({ delivery: 'sent', status: 'A_FAIRE' });
      expect(await page.$eval('#actions', (e) => e.textContent)).toContain('Envoi résolu : envoyé');
    });

    it('signs out: the cookie is gone and the sign-in form is back', async () => {
      await Promise.all([page.waitForNavigation(), page.click('header form button')]);
      expect(await page.cookies()).toEqual([]);
      expect(await page.$('#password')).not.toBeNull();
    });
  },
);
