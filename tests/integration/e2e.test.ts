import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { simpleParser, type ParsedMail } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAllDbs, openDb, queryRows, type DbHandle } from '../../db/client.js';
import { companies, subscriptions } from '../../db/schema/index.js';
import { findJob, type JobId } from '../../lib/cron/jobs.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';
import { createDemoIntegration, demoMailbox, seedDemo, type DemoIds } from '../../scripts/demo-data.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { describeWithService } from '../helpers/services.js';
import { startLocalServer } from '../../devtools/server.js';

/**
 * The newcomer's path end to end (issue 7): `npm start`'s entry point as a child process, real
 * HTTP, the embedded database, the .eml outbox, and the four routes plus /cron/status called the
 * way Vercel Cron (GET, `Authorization: Bearer`, user agent `vercel-cron/1.0`) and cron-job.org
 * (GET, `?secret=`) call them, each twice. The database is seeded before the server starts and read
 * after it stops: PGlite is single-process.
 */

const SECRET = 'e2e-cron-secret-0123456789abcdef';
const MASTER_KEY = 'e2e-encryption-master-key';
// Monday 16 March 2026, 10:00 in Paris: inside the follow-ups' default send window (weekdays 08:00–19:00)
const NOW = new Date('2026-03-16T09:00:00.000Z');
const DAY = 86_400_000;

// Dovecot is optional locally (the mailbox part is reported as skipped) and required with CI=true
const dovecotAvailable = hasDovecot();
const withMailbox = dovecotAvailable || !!process.env.CI;

type Body = Record<string, any>;
type Caller = 'vercel-cron' | 'cron-job.org';

/** The .eml files in the outbox, with their modification times (a re-send rewrites the same name). */
function outboxFiles(dir: string): Map<string, number> {
  if (!fs.existsSync(dir)) return new Map();
  return new Map(
    fs
      .readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile() && d.name.endsWith('.eml'))
      .map((d) => path.join(d.parentPath, d.name))
      .map((f) => [f, fs.statSync(f).mtimeMs]),
  );
}

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest('hex');
const toOf = (m: ParsedMail) => (Array.isArray(m.to) ? m.to : m.to ? [m.to] : []).flatMap((a) => a.value.map((v) => v.address));
// French money format: a (narrow) no-break space between thousands and before the euro sign
const money = (s: string) => new RegExp(s.replace(/ /g, '[\\s\\u00a0\\u202f]'));

describe('end to end: npm start, the four routes as Vercel Cron and cron-job.org call them', () => {
  let dataDir: string;
  let pgliteDir: string;
  let outboxDir: string;
  let ids: DemoIds;
  let dovecot: Dovecot | undefined;
  let mailboxUser = '';
  let srv: Awaited<ReturnType<typeof startLocalServer>>;
  let db: DbHandle | undefined;
  const first: Partial<Record<JobId, Body>> = {};
  const second: Partial<Record<JobId, Body>> = {};
  let outboxAfterFirst = new Map<string, number>();

  /** One GET as the given scheduler would send it, with the test's fixed clock. */
  async function call(job: JobId | 'status', as: Caller): Promise<{ status: number; body: Body }> {
    const p = job === 'status' ? '/cron/status' : findJob(JOB_REGISTRY, job)!.path;
    const clock = job === 'status' ? '' : `now=${encodeURIComponent(NOW.toISOString())}`;
    const res =
      as === 'vercel-cron'
        ? // Vercel Cron calls the /api path of vercel.json's `crons` with the Bearer secret
          await fetch(`${srv.url}/api${p}${clock ? `?${clock}` : ''}`, {
            headers: { authorization: `Bearer ${SECRET}`, 'user-agent': 'vercel-cron/1.0' },
          })
        : // cron-job.org: the URL operators configured for the original, secret in the query string
          await fetch(`${srv.url}${p}?secret=${SECRET}${clock ? `&${clock}` : ''}`, {
            headers: { 'user-agent': 'Mozilla/5.0 (compatible; cron-job.org; http://cron-job.org/abuse/)' },
          });
    return { status: res.status, body: (await res.json()) as Body };
  }

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lokario-e2e-'));
    pgliteDir = path.join(dataDir, 'pglite');
    outboxDir = path.join(dataDir, 'outbox');
    const env: Record<string, string> = {
      PORT: '0',
      SCHEDULER: 'off',
      CRON_SECRET: SECRET,
      PGLITE_DIR: pgliteDir,
      OUTBOX_DIR: outboxDir,
      ENCRYPTION_MASTER_KEY: MASTER_KEY,
      LOG_LEVEL: 'warn',
    };

    // seed in this process, then close: the server opens the same directory afterwards
    const seed = await openDb({ driver: 'pglite', pgliteDir, migrate: true });
    ids = await seedDemo(seed.db, NOW);
    // an expired trial of a company that stays (the demo's expired trial company is deleted in the same round)
    const [florist] = await seed.db
      .insert(companies)
      .values({ code: '100003', name: 'Fleuriste Lambert', slug: 'fleuriste-lambert' })
      .returning({ id: companies.id });
    await seed.db
      .insert(subscriptions)
      .values({ companyId: florist.id, plan: 'STARTER', status: 'TRIALING', trialEnd: new Date(NOW.getTime() - DAY) });
    if (withMailbox) {
      dovecot = await startDovecot({ pool: 1 });
      const box = dovecot.takeMailbox();
      mailboxUser = box.user;
      for (const [i, m] of demoMailbox(NOW, box.user).entries()) {
        await dovecot.append(box.user, box.password, [m.raw], 'INBOX', new Date(NOW.getTime() - (i + 1) * 3_600_000));
      }
      await createDemoIntegration(seed.db, ids.companyId, {
        host: dovecot.host,
        port: dovecot.port,
        user: box.user,
        password: box.password,
        masterKey: MASTER_KEY,
      });
      // the server trusts the throwaway Dovecot's self-signed certificate for STARTTLS
      const ca = path.join(dataDir, 'dovecot-ca.pem');
      fs.writeFileSync(ca, dovecot.cert);
      env.NODE_EXTRA_CA_CERTS = ca;
    }
    await closeAllDbs();
    srv = await startLocalServer(env);
  }, 120_000);

  afterAll(async () => {
    if (srv?.child.exitCode === null) {
      const exited = new Promise((r) => srv.child.once('exit', r));
      srv.child.kill('SIGINT');
      await exited;
    }
    await db?.close().catch(() => {});
    await closeAllDbs();
    await dovecot?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('/cron/status on a fresh install: 200, every job unknown (never ran), nothing in error', async () => {
    const { status, body } = await call('status', 'vercel-cron');
    expect(status).toBe(200);
    expect(body.healthy).toBe(true);
    expect(body.jobs.map((j: Body) => [j.job, j.health, j.lastRun])).toEqual([
      ['inbox-sync', 'unknown', null],
      ['followups', 'unknown', null],
      ['account-deletions', 'unknown', null],
      ['overdue-reminders', 'unknown', null],
    ]);
  });

  it('a call without the secret is refused (403) and runs nothing', async () => {
    const res = await fetch(`${srv.url}/api${findJob(JOB_REGISTRY, 'account-deletions')!.path}`, {
      headers: { 'user-agent': 'vercel-cron/1.0' },
    });
    expect(res.status).toBe(403);
    expect((await res.json()).error).toBe('forbidden');
  });

  it('inbox-sync: Vercel Cron, then cron-job.org', async () => {
    const a = await call('inbox-sync', 'vercel-cron');
    first['inbox-sync'] = a.body;
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({
      success: true,
      job: 'inbox-sync',
      trigger: 'vercel-cron',
      dryRun: false,
      partial: false,
      now: NOW.toISOString(),
      message: 'Synchronisation inbox terminée avec succès',
      errorsCount: 0,
    });
    expect(a.body.stats).toMatchObject({ integrations: withMailbox ? 1 : 0, failed: 0 });
    const b = await call('inbox-sync', 'cron-job.org');
    second['inbox-sync'] = b.body;
    expect(b.status).toBe(200);
    expect(b.body).toMatchObject({ success: true, trigger: 'http', errorsCount: 0 });
    expect(b.body.stats).toMatchObject({ messagesImported: 0, clientsCreated: 0, conversationsCreated: 0, failed: 0 });
  });

  it('followups: cron-job.org creates the follow-ups and sends the two due ones; Vercel Cron then finds nothing to send', async () => {
    const a = await call('followups', 'cron-job.org');
    first.followups = a.body;
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({
      success: true,
      job: 'followups',
      trigger: 'http',
      message: 'Traitement des relances automatiques terminé avec succès',
      errorsCount: 0,
    });
    // invoices with a balance: FAC-0101 (overdue, half paid), FAC-0105, FAC-0110; quotes DEV-041, DEV-042
    expect(a.body.stats).toMatchObject({
      created: { invoices: 3, quotes: 2 },
      due: 2,
      sent: 2,
      failedTries: 0,
      failedFinal: 0,
      markedUnknown: 0,
      via: { platform: 2 },
    });
    const b = await call('followups', 'vercel-cron');
    second.followups = b.body;
    expect(b.body).toMatchObject({ success: true, trigger: 'vercel-cron' });
    // `created` lists only the kinds that got new follow-ups: none now
    expect(b.body.stats.created).toEqual({});
    expect(b.body.stats).toMatchObject({ due: 0, sent: 0 });
  });

  it('overdue-reminders: Vercel Cron marks and notifies once, reminds the appointment once, expires the trials; cron-job.org repeats nothing', async () => {
    const a = await call('overdue-reminders', 'vercel-cron');
    first['overdue-reminders'] = a.body;
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({
      success: true,
      job: 'overdue-reminders',
      trigger: 'vercel-cron',
      message: 'Vérification des éléments en retard et des rappels terminée avec succès',
      errorsCount: 0,
    });
    expect(a.body.stats).toMatchObject({
      trials: { expired: 2 },
      invoices: { candidates: 2, created: 2, markedOverdue: 2 },
      overdueTasks: { created: 1 },
      criticalTasks: { created: 1 },
      reminders: { via: 'outbox', sent: 1, notificationsCreated: 1, failed: 0 },
    });
    const b = await call('overdue-reminders', 'cron-job.org');
    second['overdue-reminders'] = b.body;
    expect(b.body).toMatchObject({ success: true, trigger: 'http' });
    expect(b.body.stats).toMatchObject({
      trials: { expired: 0 },
      invoices: { created: 0, alreadyNotified: 2, markedOverdue: 0 },
      overdueTasks: { created: 0 },
      criticalTasks: { created: 0 },
      reminders: { sent: 0, alreadySent: 1, notificationsCreated: 0 },
    });
  });

  it('account-deletions: cron-job.org deletes the due account and reminds the one due in 5 days; Vercel Cron does neither again', async () => {
    const a = await call('account-deletions', 'cron-job.org');
    first['account-deletions'] = a.body;
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({
      success: true,
      job: 'account-deletions',
      trigger: 'http',
      message: 'Traitement des suppressions de comptes terminé avec succès',
      errorsCount: 0,
    });
    expect(a.body.stats).toMatchObject({
      due: 1,
      deletedUsers: 1,
      deletedCompanies: 1,
      remindersSent: 1,
      confirmationsSent: 1,
      emailFailures: 0,
      failures: 0,
    });
    outboxAfterFirst = outboxFiles(outboxDir);
    const b = await call('account-deletions', 'vercel-cron');
    second['account-deletions'] = b.body;
    expect(b.body).toMatchObject({ success: true, trigger: 'vercel-cron' });
    expect(b.body.stats).toMatchObject({ due: 0, deletedUsers: 0, deletedCompanies: 0, remindersSent: 0, confirmationsSent: 0 });
  });

  it('/cron/status after the runs: 200, every job healthy with its last run, nothing in an unknown state', async () => {
    const { status, body } = await call('status', 'cron-job.org');
    expect(status).toBe(200);
    expect(body.healthy).toBe(true);
    for (const j of body.jobs as Body[]) {
      expect(j.health, j.job).toBe('healthy');
      expect(j.lastRun.outcome, j.job).toBe('succeeded');
      expect(j.lastSuccessAt, j.job).not.toBeNull();
    }
    expect(body.inbox.integrationsInError).toBe(0);
    expect(body.followups.sendsInUnknownState).toBe(0);
    expect(body.appointmentReminders.sendsInUnknownState).toBe(0);
  });

  it('the outbox holds exactly the five emails, each written once', async () => {
    const files = outboxFiles(outboxDir);
    // the second round of every route wrote nothing: same files, none rewritten
    expect(files).toEqual(outboxAfterFirst);
    const mails = await Promise.all([...files.keys()].map(async (f) => simpleParser(fs.readFileSync(f))));
    expect(mails).toHaveLength(5);
    const byTo = (addr: string) => mails.filter((m) => toOf(m).includes(addr));

    // follow-up step 1 on FAC-2026-0101: 2 400 € invoiced, 1 200 € paid → the balance is asked for
    const [appointmentReminder, invoiceFollowup, ...more] = byTo('camille.bernard@example.fr').sort((x, y) =>
      (x.messageId ?? '').localeCompare(y.messageId ?? ''),
    );
    expect(more).toEqual([]);
    expect(appointmentReminder.messageId).toMatch(/appointment-reminder/);
    expect(appointmentReminder.text).toMatch(
      /Bonjour Mme Camille Bernard, nous vous rappelons votre rendez-vous du .+ à 09:00 avec Atelier Dupont Menuiserie/,
    );
    expect(invoiceFollowup.messageId).toMatch(/followup/);
    expect(invoiceFollowup.text).toMatch(money('1 200,00 €'));
    expect(invoiceFollowup.text).not.toMatch(money('2 400,00 €'));
    expect(invoiceFollowup.text).toContain('FAC-2026-0101');
    expect(invoiceFollowup.replyTo?.text).toContain('contact@atelier-dupont.fr');

    const [quoteFollowup] = byTo('julien.petit@example.fr');
    expect(quoteFollowup.text).toContain('DEV-2026-041');
    const [deletionReminder] = byTo('lucas.moreau@atelier-dupont.fr');
    expect(deletionReminder.messageId).toMatch(/deletion-reminder/);
    const [confirmation] = byTo('claire.martin@boulangerie-martin.fr');
    expect(confirmation.messageId).toMatch(/account-deleted/);
  });

  it('Ctrl-C (SIGINT) stops the server cleanly, exit code 0', async () => {
    const exited = new Promise<number | null>((r) => srv.child.once('exit', (code) => r(code)));
    srv.child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(srv.output()).toContain('SIGINT: stopping');
    db = await openDb({ driver: 'pglite', pgliteDir });
  }, 60_000);

  it('database: notifications once per dedupe key, overdue invoices EN_RETARD, follow-up history sent once per step', async () => {
    const notif = await queryRows<{ type: string; n: number; distinct_keys: number }>(
      db!.db,
      sql`
      select type::text, count(*)::int as n,
             count(distinct (company_id, type, source_type, source_id, coalesce(dedupe_key, '')))::int as distinct_keys
      from notifications where company_id = ${ids.companyId} group by type order by type`,
    );
    expect(notif).toEqual(
      [
        { type: 'INVOICE_OVERDUE', n: 2, distinct_keys: 2 },
        { type: 'TASK_OVERDUE', n: 1, distinct_keys: 1 },
        { type: 'TASK_CRITICAL', n: 1, distinct_keys: 1 },
        { type: 'APPOINTMENT_REMINDER', n: 1, distinct_keys: 1 },
      ].sort((x, y) => x.type.localeCompare(y.type)),
    );

    const inv = await queryRows<{ number: string; status: string }>(
      db!.db,
      sql`select number, status::text from invoices where company_id = ${ids.companyId} order by number`,
    );
    expect(inv).toEqual([
      { number: 'FAC-2026-0098', status: 'PAYEE' },
      { number: 'FAC-2026-0101', status: 'EN_RETARD' },
      { number: 'FAC-2026-0105', status: 'EN_RETARD' },
      { number: 'FAC-2026-0110', status: 'ENVOYEE' },
    ]);

    const history = await queryRows<{ source_label: string | null; step: number; delivery: string; message_id: string | null }>(
      db!.db,
      sql`
      select f.source_label, h.step, h.delivery::text, h.message_id
      from followup_history h join followups f on f.id = h.followup_id where h.company_id = ${ids.companyId} order by f.source_label`,
    );
    expect(history.map((h) => [h.step, h.delivery])).toEqual([
      [1, 'sent'],
      [1, 'sent'],
    ]);
    expect(history.every((h) => h.message_id)).toBe(true);
    const [{ followups }] = await queryRows<{ followups: number }>(
      db!.db,
      sql`select count(*)::int as followups from followups where company_id = ${ids.companyId}`,
    );
    expect(followups).toBe(5);

    const reminders = await queryRows<{ delivery: string }>(
      db!.db,
      sql`select delivery::text from appointment_reminders where company_id = ${ids.companyId}`,
    );
    expect(reminders).toEqual([{ delivery: 'sent' }]);
  });

  it('database: the due account deleted with its company and logged, the other reminded, the trials expired', async () => {
    const users = await queryRows<{ email: string; deletion_reminder_sent_at: Date | null }>(
      db!.db,
      sql`select email, deletion_reminder_sent_at from users order by email`,
    );
    expect(users.map((u) => u.email)).not.toContain('claire.martin@boulangerie-martin.fr');
    expect(users.find((u) => u.email === 'lucas.moreau@atelier-dupont.fr')?.deletion_reminder_sent_at).not.toBeNull();
    const [gone] = await queryRows<{ n: number }>(db!.db, sql`select count(*)::int as n from companies where id = ${ids.trialCompanyId}`);
    expect(gone.n).toBe(0);
    const log = await queryRows<{ user_id: number; company_id: number | null; email_sha256: string; scope: string }>(
      db!.db,
      sql`
      select user_id, company_id, email_sha256, scope from account_deletion_log`,
    );
    expect(log).toEqual([
      {
        user_id: ids.deletionDueUserId,
        company_id: ids.trialCompanyId,
        email_sha256: sha256('claire.martin@boulangerie-martin.fr'),
        scope: 'company',
      },
    ]);

    const trials = await queryRows<{ name: string; status: string }>(
      db!.db,
      sql`
      select c.name, s.status::text from subscriptions s join companies c on c.id = s.company_id order by c.name`,
    );
    expect(trials).toEqual([
      { name: 'Atelier Dupont Menuiserie', status: 'ACTIVE' },
      { name: 'Fleuriste Lambert', status: 'INCOMPLETE_EXPIRED' },
    ]);
  });

  it('database: cron_runs has two succeeded runs per job, with the trigger of each caller', async () => {
    const runs = await queryRows<{ job: string; trigger: string; outcome: string; dry_run: boolean }>(
      db!.db,
      sql`
      select job, trigger, outcome::text, dry_run from cron_runs order by started_at`,
    );
    expect(runs.map((r) => `${r.job} ${r.trigger} ${r.outcome}`)).toEqual([
      'inbox-sync vercel-cron succeeded',
      'inbox-sync http succeeded',
      'followups http succeeded',
      'followups vercel-cron succeeded',
      'overdue-reminders vercel-cron succeeded',
      'overdue-reminders http succeeded',
      'account-deletions http succeeded',
      'account-deletions vercel-cron succeeded',
    ]);
    expect(runs.every((r) => !r.dry_run)).toBe(true);
    // each run's id is the runId its response carried
    const [{ ids: runIds }] = await queryRows<{ ids: string[] }>(
      db!.db,
      sql`select array_agg(id order by started_at) as ids from cron_runs`,
    );
    const jobs: JobId[] = ['inbox-sync', 'followups', 'overdue-reminders', 'account-deletions'];
    expect(runIds).toEqual(jobs.flatMap((j) => [first[j]!.runId, second[j]!.runId]));
    const [{ leases }] = await queryRows<{ leases: number }>(
      db!.db,
      sql`select count(*)::int as leases from cron_leases where expires_at > now()`,
    );
    expect(leases).toBe(0);
  });

  describeWithService(dovecotAvailable, 'Dovecot (apt-get install dovecot-imapd)')(
    'the demo mailbox (real IMAP, STARTTLS, Fernet-encrypted password)',
    () => {
      it('inbox-sync imported the three messages once: a new client, a reply threaded into the quote email, a newsletter without a client', async () => {
        expect(first['inbox-sync']!.stats).toMatchObject({
          integrations: 1,
          synced: 1,
          messagesImported: 3,
          clientsCreated: 1,
          conversationsCreated: 2,
          legacyPlaintextPasswords: 0,
        });
        expect(second['inbox-sync']!.stats).toMatchObject({ integrations: 1, failed: 0, messagesImported: 0, messagesDuplicate: 0 });

        const expected = demoMailbox(NOW, mailboxUser);
        const rows = await queryRows<{ external_id: string; from_email: string; conversation_id: number; client_id: number | null }>(
          db!.db,
          sql`
        select m.external_id, m.from_email, m.conversation_id, c.client_id
        from inbox_messages m join conversations c on c.id = m.conversation_id
        where m.company_id = ${ids.companyId} and m.is_from_client order by m.id`,
        );
        expect(rows.map((r) => r.external_id).sort()).toEqual(expected.map((m) => m.messageId).sort());

        const clientByEmail = async (email: string) =>
          (
            await queryRows<{ id: number }>(
              db!.db,
              sql`
        select id from clients where company_id = ${ids.companyId} and lower(email) = ${email}`,
            )
          )[0]?.id ?? null;
        for (const m of expected) {
          const row = rows.find((r) => r.external_id === m.messageId)!;
          if (m.expect === 'new-client') {
            expect(await clientByEmail(m.from)).not.toBeNull();
            expect(row.client_id).toBe(await clientByEmail(m.from));
          } else if (m.expect === 'thread-reply') {
            expect(row.conversation_id).toBe(ids.quoteThreadConversationId);
          } else {
            expect(await clientByEmail(m.from)).toBeNull();
            expect(row.client_id).toBeNull();
          }
        }

        const [integration] = await queryRows<{
          last_sync_status: string;
          last_uid: string;
          consecutive_failures: number;
          email_password: string;
        }>(
          db!.db,
          sql`
        select last_sync_status, last_uid::text, consecutive_failures, email_password from inbox_integrations where company_id = ${ids.companyId}`,
        );
        expect(integration).toMatchObject({ last_sync_status: 'success', last_uid: '3', consecutive_failures: 0 });
        expect(integration.email_password.startsWith('gAAAAA')).toBe(true);
      });
    },
  );
});
