import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import {
  createCompany,
  createIntegration,
  integrationRow,
  messagesOf,
  newMailbox,
  runSync,
  simpleMail,
} from '../helpers/inbox-fixtures.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');
const DAY = 86_400_000;

describeImap('inbox-sync: incremental, gap-free, duplicate-free (real Dovecot, real PostgreSQL)', () => {
  let t: TestDatabase;
  let d: Dovecot;
  beforeAll(async () => {
    t = await createTestDatabase('inboxincr');
    d = await startDovecot();
  }, 60_000);
  afterAll(async () => {
    await d?.stop();
    await t?.drop();
  });

  it('first sync imports the mailbox; a second run takes the fast path (STATUS, then LOGOUT) and imports nothing; new mail only is imported', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'incr');
    await d.append(
      box.user,
      box.password,
      [1, 2, 3].map((i) => simpleMail(`incr-${i}@t`)),
    );
    const companyId = await createCompany(db);
    const id = await createIntegration(db, companyId, d, box.user, box.password);
    const scope = { companyId };
    const r1 = await runSync(t.handle, d, { scope });
    expect(r1.body.stats).toMatchObject({ synced: 1, messagesImported: 3 });
    const row = await integrationRow(db, id);
    expect(Number(row.last_uid)).toBe(3);
    expect(row.uid_validity).not.toBeNull();
    expect(row.highest_modseq).not.toBeNull();

    const commands: string[] = [];
    const r2 = await runSync(t.handle, d, { scope, job: { onCommand: (_i, verb) => commands.push(verb) } });
    expect(r2.body.stats).toMatchObject({ synced: 1, messagesImported: 0, messagesDuplicate: 0 });
    const afterLogin = commands.slice(commands.findIndex((c) => c === 'LOGIN' || c === 'AUTHENTICATE') + 1);
    // imapflow's own session setup (NAMESPACE, ENABLE) aside, the mailbox costs STATUS + LOGOUT
    expect(afterLogin.filter((c) => !['NAMESPACE', 'ENABLE', 'ID', 'COMPRESS'].includes(c))).toEqual(['STATUS', 'LOGOUT']);

    await d.append(box.user, box.password, [simpleMail('incr-4@t'), simpleMail('incr-5@t')]);
    const r3 = await runSync(t.handle, d, { scope });
    expect(r3.body.stats).toMatchObject({ synced: 1, messagesImported: 2 });
    expect((await messagesOf(db, companyId)).map((m) => m.external_id)).toEqual([
      'incr-1@t',
      'incr-2@t',
      'incr-3@t',
      'incr-4@t',
      'incr-5@t',
    ]);
  });

  it("never changes the user's \\Seen flags (read-only EXAMINE, BODY.PEEK)", async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'seen');
    await d.append(box.user, box.password, [simpleMail('seen-1@t'), simpleMail('seen-2@t')]);
    const companyId = await createCompany(db);
    await createIntegration(db, companyId, d, box.user, box.password);
    expect((await runSync(t.handle, d, { scope: { companyId } })).body.stats).toMatchObject({ messagesImported: 2 });
    const c = await d.client(box.user, box.password);
    await c.mailboxOpen('INBOX', { readOnly: true });
    const flags = (await c.fetchAll('1:*', { flags: true })).map((m) => [...(m.flags ?? [])]);
    await c.logout();
    expect(flags).toHaveLength(2);
    for (const f of flags) expect(f).not.toContain('\\Seen');
  });

  it('UIDVALIDITY change (folder deleted and recreated): the re-scan imports nothing twice and picks up the new mail', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'uidv');
    const old = [1, 2, 3].map((i) => simpleMail(`uidv-${i}@t`));
    await d.append(box.user, box.password, old, 'Clients');
    const companyId = await createCompany(db);
    const id = await createIntegration(db, companyId, d, box.user, box.password, { folder: 'Clients' });
    expect((await runSync(t.handle, d, { scope: { companyId } })).body.stats).toMatchObject({ messagesImported: 3 });
    const before = await integrationRow(db, id);

    const c = await d.client(box.user, box.password);
    await c.mailboxDelete('Clients');
    await c.logout();
    await new Promise((r) => setTimeout(r, 1100)); // UIDVALIDITY is a timestamp in seconds on Dovecot
    // the same three messages come back (a server migration), plus one new, plus one without a Message-ID
    await d.append(
      box.user,
      box.password,
      [...old, simpleMail('uidv-4@t'), 'From: a@exemple.fr\r\nSubject: sans id\r\n\r\nhello\r\n'],
      'Clients',
    );

    const r = await runSync(t.handle, d, { scope: { companyId } });
    expect(r.body.stats).toMatchObject({ synced: 1, messagesImported: 2, messagesDuplicate: 3 });
    const after = await integrationRow(db, id);
    expect(after.uid_validity).not.toBe(before.uid_validity);
    expect(Number(after.last_uid)).toBe(5);
    expect((await messagesOf(db, companyId)).map((m) => m.external_id).filter((x) => !x.startsWith('sha256:'))).toEqual([
      'uidv-1@t',
      'uidv-2@t',
      'uidv-3@t',
      'uidv-4@t',
    ]);
    const again = await runSync(t.handle, d, { scope: { companyId } });
    expect(again.body.stats).toMatchObject({ messagesImported: 0 });
  });

  it('a run cut by the deadline saves its cursor at a message boundary, answers partial, and the next run resumes without a gap', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'cut');
    const total = 130;
    await d.append(
      box.user,
      box.password,
      Array.from({ length: total }, (_, i) => simpleMail(`cut-${i + 1}@t`)),
    );
    const companyId = await createCompany(db);
    const id = await createIntegration(db, companyId, d, box.user, box.password);
    let segments = 0;
    const r1 = await runSync(t.handle, d, {
      scope: { companyId },
      job: {
        hooks: {
          afterSegment: () => {
            segments++;
          },
          shouldStop: () => segments >= 1,
        },
      },
    });
    expect(r1.body).toMatchObject({ partial: true });
    expect(r1.body.stats).toMatchObject({ synced: 1, messagesImported: 50, incomplete: 1 });
    const mid = await integrationRow(db, id);
    expect(Number(mid.last_uid)).toBe(50);
    expect(mid).toMatchObject({ last_sync_status: 'partial', sync_lease_until: null });

    const r2 = await runSync(t.handle, d, { scope: { companyId } });
    expect(r2.body).toMatchObject({ partial: false });
    expect(r2.body.stats).toMatchObject({ messagesImported: total - 50, messagesDuplicate: 0 });
    const ids = (await messagesOf(db, companyId)).map((m) => m.external_id);
    expect(ids).toEqual(Array.from({ length: total }, (_, i) => `cut-${i + 1}@t`));
    expect((await integrationRow(db, id)).last_sync_status).toBe('success');
  });

  it("defect 12: after a 3-day outage, mail older than the original's 6-hour window is still imported", async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'outage');
    await d.append(box.user, box.password, [simpleMail('outage-0@t')]);
    const companyId = await createCompany(db);
    await createIntegration(db, companyId, d, box.user, box.password);
    const lastRun = new Date(Date.now() - 3 * DAY);
    expect((await runSync(t.handle, d, { scope: { companyId }, now: lastRun })).body.stats).toMatchObject({ messagesImported: 1 });
    // the cron is down for three days; mail keeps arriving (delivery dates 70 h, 40 h and 2 h ago)
    for (const [i, hoursAgo] of [
      [1, 70],
      [2, 40],
      [3, 2],
    ]) {
      await d.append(
        box.user,
        box.password,
        [simpleMail(`outage-${i}@t`, { headers: { Date: new Date(Date.now() - hoursAgo * 3_600_000).toUTCString() } })],
        'INBOX',
        new Date(Date.now() - hoursAgo * 3_600_000),
      );
    }
    const r = await runSync(t.handle, d, { scope: { companyId } });
    expect(r.body.stats).toMatchObject({ messagesImported: 3 });
    expect((await messagesOf(db, companyId)).map((m) => m.external_id)).toEqual(['outage-0@t', 'outage-1@t', 'outage-2@t', 'outage-3@t']);
  });

  it('first sync takes the last 14 days only', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'window');
    await d.append(box.user, box.password, [simpleMail('old@t')], 'INBOX', new Date(Date.now() - 30 * DAY));
    await d.append(box.user, box.password, [simpleMail('recent@t')], 'INBOX', new Date(Date.now() - 2 * DAY));
    const companyId = await createCompany(db);
    await createIntegration(db, companyId, d, box.user, box.password);
    expect((await runSync(t.handle, d, { scope: { companyId } })).body.stats).toMatchObject({ messagesImported: 1 });
    expect((await messagesOf(db, companyId)).map((m) => m.external_id)).toEqual(['recent@t']);
  });

  it('dryRun: says how many messages would be fetched per integration, imports nothing, leaves the cursor alone', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'dry');
    await d.append(
      box.user,
      box.password,
      [1, 2, 3, 4].map((i) => simpleMail(`dry-${i}@t`)),
    );
    const companyId = await createCompany(db);
    const id = await createIntegration(db, companyId, d, box.user, box.password);
    const r = await runSync(t.handle, d, { scope: { companyId }, dryRun: true });
    expect(r.body).toMatchObject({ dryRun: true, stats: { messagesToFetch: 4, messagesImported: 0 } });
    expect(r.body.plan).toEqual([{ integrationId: id, status: 'success', plan: 'since', newMessages: 4 }]);
    expect(await messagesOf(db, companyId)).toEqual([]);
    expect(await integrationRow(db, id)).toMatchObject({ uid_validity: null, last_uid: null, last_sync_status: null, last_sync_at: null });
  });

  it('implicit TLS (use_ssl) works with certificate verification on; a legacy plaintext password is used and flagged', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'tls');
    await d.append(box.user, box.password, [simpleMail('tls-1@t')]);
    const companyId = await createCompany(db);
    await createIntegration(db, companyId, d, box.user, box.password, { tls: true, plaintext: true });
    const r = await runSync(t.handle, d, { scope: { companyId } });
    expect(r.body.stats).toMatchObject({ synced: 1, messagesImported: 1, legacyPlaintextPasswords: 1 });
  });

  it('threading across runs: a reply arriving later joins the conversation (In-Reply-To), another sender with the same subject does not', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'thread');
    await d.append(box.user, box.password, [simpleMail('th-1@t', { from: 'A <a@exemple.fr>', subject: 'Bonjour' })]);
    const companyId = await createCompany(db);
    await createIntegration(db, companyId, d, box.user, box.password);
    await runSync(t.handle, d, { scope: { companyId } });
    await d.append(box.user, box.password, [
      simpleMail('th-2@t', { from: 'B <b@exemple.fr>', subject: 'RE: Bonjour', headers: { 'In-Reply-To': '<th-1@t>' } }),
      simpleMail('th-3@t', { from: 'C <c@exemple.fr>', subject: 'Bonjour' }),
      simpleMail('th-4@t', { from: 'A <A@Exemple.fr>', subject: 'Re: bonjour' }),
    ]);
    await runSync(t.handle, d, { scope: { companyId } });
    const conv = new Map((await messagesOf(db, companyId)).map((m) => [m.external_id, m.conversation_id]));
    expect(conv.get('th-2@t')).toBe(conv.get('th-1@t'));
    expect(conv.get('th-4@t')).toBe(conv.get('th-1@t'));
    expect(conv.get('th-3@t')).not.toBe(conv.get('th-1@t'));
    const [c] = await queryRows<{ unread_count: number; status: string }>(
      db,
      sql`select unread_count, status from conversations where id = ${conv.get('th-1@t')!}`,
    );
    expect(c).toEqual({ unread_count: 3, status: 'À répondre' });
  });

  it('an archived conversation keeps its status when a reply arrives', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'arch');
    await d.append(box.user, box.password, [simpleMail('arch-1@t')]);
    const companyId = await createCompany(db);
    await createIntegration(db, companyId, d, box.user, box.password);
    await runSync(t.handle, d, { scope: { companyId } });
    await db.execute(sql`update conversations set status = 'Archivé', unread_count = 0 where company_id = ${companyId}`);
    await d.append(box.user, box.password, [simpleMail('arch-2@t', { headers: { 'In-Reply-To': '<arch-1@t>' } })]);
    await runSync(t.handle, d, { scope: { companyId } });
    const rows = await queryRows<{ status: string; unread_count: number }>(
      db,
      sql`select status, unread_count from conversations where company_id = ${companyId}`,
    );
    expect(rows).toEqual([{ status: 'Archivé', unread_count: 1 }]);
  });
});
