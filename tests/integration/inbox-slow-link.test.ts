import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { badLink } from '../helpers/imap-relay.js';
import { readInboxProgress } from '../../lib/jobs/inbox-sync/attention.js';
import {
  createCompany,
  createIntegration,
  integrationRow,
  messagesOf,
  newMailbox,
  runSync,
  simpleMail,
} from '../helpers/inbox-fixtures.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';
import { scheduleIntervalMs } from '../../lib/cron/schedule.js';
import { inboxSyncJob } from '../../lib/jobs/inbox-sync/index.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');

/** What the issue allows past the budget: the run answers within budget + 5 s whatever the server does. */
const ANSWER_SLACK_MS = 5_000;
const INBOX_SYNC_INTERVAL_MS = scheduleIntervalMs(inboxSyncJob.schedule, new Date());

/** A small message with a (tiny) PDF attachment: ~0.5 KB, so the link, not the store, is the bottleneck. */
function mailWithAttachment(n: number): string {
  return [
    'From: Client <client@exemple.fr>',
    'To: me@test.local',
    `Subject: Facture ${n}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <slow-${n}@t>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b"',
    '',
    '--b',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Bonjour, voici la pièce ${n}.`,
    '--b',
    `Content-Type: application/pdf; name="f${n}.pdf"`,
    `Content-Disposition: attachment; filename="f${n}.pdf"`,
    'Content-Transfer-Encoding: base64',
    '',
    'JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoK',
    '--b--',
    '',
  ].join('\r\n');
}

describeImap('inbox-sync: the deadline holds on slow and stalling links (real Dovecot behind a relay, real PostgreSQL)', () => {
  let t: TestDatabase;
  let d: Dovecot;
  beforeAll(async () => {
    t = await createTestDatabase('inboxslow');
    d = await startDovecot();
  }, 60_000);
  afterAll(async () => {
    await d?.stop();
    await t?.drop();
  });

  it('20 KB/s, 3,000 messages with attachments: every run answers within budget + 5 s and stores something; in the end every message is imported once', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'slow');
    const total = 3_000;
    await d.append(
      box.user,
      box.password,
      Array.from({ length: total }, (_, i) => mailWithAttachment(i + 1)),
    );
    const link = await badLink(d.port);
    link.throttle(20 * 1024);
    const budgetMs = 12_000;
    try {
      const companyId = await createCompany(db);
      const id = await createIntegration(db, companyId, d, box.user, box.password, { port: link.port });
      const runs: { ms: number; imported: number; partial: boolean }[] = [];
      let t0 = Date.now();
      for (let n = 0; n < 40; n++) {
        const started = Date.now();
        // each run is a later cron tick (the partial mailbox is due again at once)
        const r = await runSync(t.handle, d, {
          scope: { companyId },
          now: new Date((t0 += 300_000)),
          env: { CRON_BUDGET_MS: String(budgetMs) },
        });
        const ms = Date.now() - started;
        expect(httpStatusOf(r)).toBe(200);
        const stats = r.body.stats as { messagesImported: number; messagesDuplicate: number; failed: number };
        expect(stats.failed).toBe(0);
        expect(stats.messagesDuplicate).toBe(0);
        runs.push({ ms, imported: stats.messagesImported, partial: r.body.partial as boolean });
        expect(ms).toBeLessThan(budgetMs + ANSWER_SLACK_MS);
        expect(stats.messagesImported).toBeGreaterThan(0); // it advanced (the last run stores the rest)
        const row = await integrationRow(db, id);
        expect(row.sync_lease_until).toBeNull();
        if (!r.body.partial) break;
        expect(row.last_sync_status).toBe('partial');
      }
      expect(runs.length).toBeGreaterThan(1); // the link, not the machine, was the bottleneck
      expect(runs.at(-1)!.partial).toBe(false);
      const ids = (await messagesOf(db, companyId)).map((m) => m.external_id);
      expect(ids).toEqual(Array.from({ length: total }, (_, i) => `slow-${i + 1}@t`));
      const [att] = await queryRows<{ n: number }>(
        db,
        sql`
        select count(*)::int as n from message_attachments a join inbox_messages m on m.id = a.message_id where m.company_id = ${companyId}`,
      );
      expect(att.n).toBe(total);
      const [stored] = await queryRows<{ sync_bytes_per_sec: number | null; last_progress_at: Date | null; last_sync_status: string }>(
        db,
        sql`
        select sync_bytes_per_sec, last_progress_at, last_sync_status from inbox_integrations where id = ${id}`,
      );
      expect(stored.last_sync_status).toBe('success');
      expect(stored.last_progress_at).not.toBeNull();
      // measured, in the order of the link's 20 KB/s (protocol overhead and waits make it lower)
      expect(stored.sync_bytes_per_sec).toBeGreaterThan(2 * 1024);
      expect(stored.sync_bytes_per_sec).toBeLessThan(40 * 1024);
      console.log(
        `[slow link] ${runs.length} runs: ${runs.map((r) => `${r.imported} in ${(r.ms / 1000).toFixed(1)} s`).join(', ')}; measured ${stored.sync_bytes_per_sec} B/s`,
      );
    } finally {
      await link.close();
    }
  }, 600_000);

  it('a message larger than the link can deliver within a run is recorded (headers and a note) and skipped, never retried; /cron/status shows the mailbox', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'huge');
    const small = Array.from({ length: 20 }, (_, i) => simpleMail(`h-${i + 1}@t`, { body: `petit ${i + 1} `.repeat(60) }));
    const huge = simpleMail('h-huge@t', { subject: 'Plans du chantier', body: 'p'.repeat(76).concat('\r\n').repeat(8_000) }); // ~600 KB: 30 s at 20 KB/s
    await d.append(box.user, box.password, [...small.slice(0, 10), huge, ...small.slice(10)]);
    const link = await badLink(d.port);
    link.throttle(20 * 1024);
    const budgetMs = 8_000;
    try {
      const companyId = await createCompany(db);
      const id = await createIntegration(db, companyId, d, box.user, box.password, { port: link.port });
      const t0 = Date.now();
      const results = [];
      for (let n = 0; n < 4; n++) {
        const started = Date.now();
        const r = await runSync(t.handle, d, {
          scope: { companyId },
          now: new Date(t0 + n * 300_000),
          env: { CRON_BUDGET_MS: String(budgetMs) },
        });
        expect(Date.now() - started).toBeLessThan(budgetMs + ANSWER_SLACK_MS);
        expect(r.body.stats).toMatchObject({ failed: 0, messagesDuplicate: 0 });
        results.push(r);
        if (n === 0) {
          // unmeasured link: the first run learns its speed; the status shows the mailbox behind
          const progress = await readInboxProgress(db, new Date(), INBOX_SYNC_INTERVAL_MS);
          const mine = progress.mailboxes.find((m) => m.id === id)!;
          expect(mine).toMatchObject({ status: 'partial' });
          expect(mine.bytesPerSec).toBeGreaterThan(1024);
          expect(['stalled', 'advancing']).toContain(mine.progress);
        }
        if (!r.body.partial) break;
      }
      expect(results.at(-1)!.body.partial).toBe(false);
      expect(results.length).toBeLessThanOrEqual(3); // once measured, the big message no longer blocks the mailbox
      const msgs = await messagesOf(db, companyId);
      expect(msgs.map((m) => m.external_id).sort()).toEqual([...Array.from({ length: 20 }, (_, i) => `h-${i + 1}@t`), 'h-huge@t'].sort());
      const big = msgs.find((m) => m.external_id === 'h-huge@t')!;
      expect(big.content).toMatch(/^\[Message de 6\d\d Ko non importé : la liaison avec le serveur de messagerie \(environ \d+ Ko\/s\)/);
      expect((await integrationRow(db, id)).last_sync_status).toBe('success');
      // never retried: the next run finds nothing to do
      const again = await runSync(t.handle, d, {
        scope: { companyId },
        now: new Date(t0 + 3_600_000),
        env: { CRON_BUDGET_MS: String(budgetMs) },
      });
      expect(again.body.stats).toMatchObject({ messagesImported: 0, messagesDuplicate: 0 });
      const progress = await readInboxProgress(db, new Date(), INBOX_SYNC_INTERVAL_MS);
      expect(progress.mailboxes.find((m) => m.id === id)).toBeUndefined(); // caught up: only counted
      expect(progress.caughtUp).toBeGreaterThanOrEqual(1);
    } finally {
      await link.close();
    }
  }, 120_000);

  it('the server stops sending in the middle of a FETCH: the run answers within budget + 5 s with what arrived whole; the next run continues', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'stall');
    const total = 200;
    const body = 'z'.repeat(76).concat('\r\n').repeat(26); // ~2 KB a message
    await d.append(
      box.user,
      box.password,
      Array.from({ length: total }, (_, i) => simpleMail(`stall-${i + 1}@t`, { body })),
    );
    const link = await badLink(d.port);
    const budgetMs = 6_000;
    try {
      const companyId = await createCompany(db);
      const id = await createIntegration(db, companyId, d, box.user, box.password, { port: link.port });
      // the second FETCH is the sources': the server goes silent after ~130 KB of them (segment 1 whole)
      let fetches = 0;
      const onCommand = (_id: number, verb: string) => {
        if (verb === 'FETCH' && ++fetches === 2) link.stallAfter(130_000);
      };
      const t0 = Date.now();
      const started = Date.now();
      const r1 = await runSync(t.handle, d, {
        scope: { companyId },
        now: new Date(t0),
        job: { onCommand },
        env: { CRON_BUDGET_MS: String(budgetMs), IMAP_SOCKET_TIMEOUT_MS: '30000' },
      });
      expect(Date.now() - started).toBeLessThan(budgetMs + ANSWER_SLACK_MS);
      expect(httpStatusOf(r1)).toBe(200);
      expect(r1.body.partial).toBe(true);
      const s1 = r1.body.stats as { messagesImported: number; failed: number; incomplete: number };
      expect(s1).toMatchObject({ failed: 0, incomplete: 1 });
      expect(s1.messagesImported).toBeGreaterThanOrEqual(50);
      expect(s1.messagesImported).toBeLessThan(total);
      const mid = await integrationRow(db, id);
      expect(mid).toMatchObject({ last_sync_status: 'partial', sync_lease_until: null, consecutive_failures: 0 });
      expect(Number(mid.last_uid)).toBe(s1.messagesImported);

      link.restore();
      const r2 = await runSync(t.handle, d, { scope: { companyId }, now: new Date(t0 + 300_000), env: { CRON_BUDGET_MS: '20000' } });
      expect(r2.body.partial).toBe(false);
      expect(r2.body.stats).toMatchObject({ messagesImported: total - s1.messagesImported, messagesDuplicate: 0 });
      expect((await messagesOf(db, companyId)).map((m) => m.external_id)).toEqual(
        Array.from({ length: total }, (_, i) => `stall-${i + 1}@t`),
      );
      expect((await integrationRow(db, id)).last_sync_status).toBe('success');
    } finally {
      await link.close();
    }
  }, 120_000);

  it('the server stalls mid-FETCH for longer than the socket timeout, inside the budget: timeout_fetch, what arrived whole is kept', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'stall-timeout');
    const total = 120;
    const body = 'w'.repeat(76).concat('\r\n').repeat(26);
    await d.append(
      box.user,
      box.password,
      Array.from({ length: total }, (_, i) => simpleMail(`st-${i + 1}@t`, { body })),
    );
    const link = await badLink(d.port);
    try {
      const companyId = await createCompany(db);
      const id = await createIntegration(db, companyId, d, box.user, box.password, { port: link.port });
      let fetches = 0;
      const onCommand = (_id: number, verb: string) => {
        if (verb === 'FETCH' && ++fetches === 2) link.stallAfter(130_000);
      };
      const r = await runSync(t.handle, d, {
        scope: { companyId },
        job: { onCommand },
        env: { CRON_BUDGET_MS: '20000', IMAP_SOCKET_TIMEOUT_MS: '1500' },
      });
      expect((r.body.errors as { code: string }[])[0]).toMatchObject({ code: 'timeout_fetch' });
      expect((r.body.errors as { message: string }[])[0].message).toMatch(/cessé de répondre pendant la lecture/);
      const row = await integrationRow(db, id);
      expect(row).toMatchObject({ last_sync_status: 'error', sync_lease_until: null });
      expect(Number(row.last_uid)).toBe((r.body.stats as { messagesImported: number }).messagesImported);
    } finally {
      await link.close();
    }
  }, 60_000);
});
