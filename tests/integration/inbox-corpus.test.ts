import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { buildCorpus, type CorpusMessage } from '../helpers/mail-corpus.js';
import { createCompany, createIntegration, integrationRow, messagesOf, newMailbox, runSync } from '../helpers/inbox-fixtures.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');

describeImap('inbox-sync: the tricky corpus, end to end (real Dovecot, real PostgreSQL)', () => {
  let t: TestDatabase;
  let d: Dovecot;
  let companyId: number;
  let integrationId: number;
  const corpus: CorpusMessage[] = buildCorpus({ blockedDomain: 'partenaire-bloque.fr', existingClientEmail: 'deja.client@exemple.fr' });
  let first: Awaited<ReturnType<typeof runSync>>;

  beforeAll(async () => {
    t = await createTestDatabase('inboxcorpus');
    d = await startDovecot();
    const box = newMailbox(d, 'corpus');
    await d.append(
      box.user,
      box.password,
      corpus.map((c) => c.raw),
    );
    companyId = await createCompany(t.handle.db, { clients: { blocked_client_domains: ['partenaire-bloque.fr'] } });
    await t.handle.db.execute(
      sql`insert into clients (company_id, name, email) values (${companyId}, 'Client Connu', 'Deja.Client@exemple.fr')`,
    );
    integrationId = await createIntegration(t.handle.db, companyId, d, box.user, box.password);
    first = await runSync(t.handle, d, { env: { MAX_ATTACHMENT_BYTES: String(1024 * 1024) } });
  }, 120_000);
  afterAll(async () => {
    await d?.stop();
    await t?.drop();
  });

  it('has at least 30 messages and the run succeeds', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(30);
    expect(httpStatusOf(first)).toBe(200);
    expect(first.body).toMatchObject({ success: true, partial: false, message: 'Synchronisation inbox terminée avec succès' });
    const duplicatesInCorpus = corpus.filter((c) => c.expect.duplicateOf).length;
    const poisonInCorpus = corpus.filter((c) => c.expect.poison).length;
    expect(poisonInCorpus).toBe(1);
    expect(first.body.stats).toMatchObject({
      integrations: 1,
      synced: 1,
      failed: 0,
      messagesImported: corpus.length - duplicatesInCorpus - poisonInCorpus,
      messagesDuplicate: duplicatesInCorpus,
      messagesPoison: poisonInCorpus,
    });
  });

  it('each corpus message has its expected outcome', async () => {
    const db = t.handle.db;
    const rows = await messagesOf(db, companyId);
    const byExt = new Map(rows.map((r) => [r.external_id, r]));
    const hashRows = rows.filter((r) => r.external_id.startsWith('sha256:'));
    const clients = await queryRows<{ id: number; email: string }>(
      db,
      sql`select id, lower(email) as email from clients where company_id = ${companyId}`,
    );
    const rowOf = (c: CorpusMessage) =>
      c.expect.externalId === 'hash'
        ? hashRows.find((r) => c.expect.textIncludes?.every((s) => r.content.includes(s)))
        : byExt.get(c.expect.externalId);
    for (const c of corpus) {
      const e = c.expect;
      const row = rowOf(c);
      if (e.poison) {
        expect(row, c.name).toBeUndefined();
        continue;
      }
      expect(row, c.name).toBeDefined();
      if (!row) continue;
      if (e.duplicateOf) {
        expect(row.id, c.name).toBe(rowOf(corpus.find((x) => x.name === e.duplicateOf)!)!.id);
        continue;
      }
      const meta = row.external_metadata as { subject?: string };
      if (e.subject !== undefined) expect(meta.subject, c.name).toBe(e.subject);
      if (e.kind !== undefined) expect(row.kind, c.name).toBe(e.kind);
      if (e.textStartsWith !== undefined)
        expect(row.content.trimStart().startsWith(e.textStartsWith), `${c.name}: ${JSON.stringify(row.content.slice(0, 80))}`).toBe(true);
      for (const s of e.textIncludes ?? []) expect(row.content, c.name).toContain(s);
      for (const s of e.textExcludes ?? []) expect(row.content, c.name).not.toContain(s);
      if (e.fromEmail !== undefined) expect(row.from_email, c.name).toBe(e.fromEmail);
      if (e.fromName !== undefined) expect(row.from_name, c.name).toBe(e.fromName);
      if (e.client === 'none')
        expect(
          clients.some((k) => k.email === row.from_email),
          c.name,
        ).toBe(false);
      if (e.client === 'created' || e.client === 'existing')
        expect(
          clients.filter((k) => k.email === row.from_email),
          c.name,
        ).toHaveLength(1);
      if (e.sentAt === 'null') expect(row.sent_at, c.name).toBeNull();
      else if (e.sentAt === 'future') expect(new Date(row.sent_at!).getUTCFullYear(), c.name).toBe(2099);
      else if (e.sentAt) expect(new Date(row.sent_at!).toISOString(), c.name).toBe(e.sentAt);
      if (e.attachments) {
        const atts = await queryRows<{
          name: string;
          mime_type: string | null;
          skipped_reason: string | null;
          has_content: boolean;
          file_size: number;
        }>(
          db,
          sql`
          select name, mime_type, skipped_reason, content is not null as has_content, file_size from message_attachments where message_id = ${row.id} order by id`,
        );
        expect(
          atts.map((a) => a.name),
          c.name,
        ).toEqual(e.attachments.map((a) => a.name));
        e.attachments.forEach((a, i) => {
          if (a.mimeType) expect(atts[i].mime_type, c.name).toBe(a.mimeType);
          expect(atts[i].has_content, c.name).toBe(!a.skipped);
          expect(atts[i].skipped_reason !== null, c.name).toBe(!!a.skipped);
        });
      }
      if (e.threadWith)
        expect(row.conversation_id, `${c.name} threads with ${e.threadWith}`).toBe(
          rowOf(corpus.find((x) => x.name === e.threadWith)!)!.conversation_id,
        );
      if (e.separateFrom)
        expect(row.conversation_id, `${c.name} apart from ${e.separateFrom}`).not.toBe(
          rowOf(corpus.find((x) => x.name === e.separateFrom)!)!.conversation_id,
        );
    }
  });

  it('a poison message is recorded once with its UID and skipped; the cursor moves past it and the next message is imported', async () => {
    const poison = await queryRows<{ integration_id: number; uid: string; error: string }>(
      t.handle.db,
      sql`select integration_id, uid, error from inbox_poison_messages`,
    );
    expect(poison).toHaveLength(1);
    expect(poison[0]).toMatchObject({ integration_id: integrationId, uid: String(corpus.findIndex((c) => c.expect.poison) + 1) });
    expect(poison[0].error).toMatch(/unparseable/);
    expect((await messagesOf(t.handle.db, companyId)).some((m) => m.external_id === 'after-poison@corpus.test')).toBe(true);
    expect(Number((await integrationRow(t.handle.db, integrationId)).last_uid)).toBe(corpus.length);
  });

  it('defect 4: attachment names carry no path, no control character', async () => {
    const names = await queryRows<{ name: string }>(t.handle.db, sql`select name from message_attachments`);
    for (const { name } of names) {
      expect(name).not.toMatch(/[\\/\u0000-\u001f\u202e]/);
      expect(name.startsWith('.')).toBe(false);
    }
  });

  it('defect 17: mime types are kept, the Date header is stored, the status columns are written', async () => {
    const [att] = await queryRows<{ n: number }>(
      t.handle.db,
      sql`select count(*)::int as n from message_attachments where mime_type is null`,
    );
    expect(att.n).toBe(0);
    const row = await integrationRow(t.handle.db, integrationId);
    expect(row).toMatchObject({ last_sync_status: 'success', last_sync_error: null, consecutive_failures: 0, sync_lease_until: null });
    expect(row.last_sync_at).not.toBeNull();
  });

  it('a future Date header never puts a conversation in the future (clamped to now)', async () => {
    const [r] = await queryRows<{ last_message_at: Date }>(
      t.handle.db,
      sql`
      select c.last_message_at from conversations c join inbox_messages m on m.conversation_id = c.id where m.external_id = 'future@corpus.test'`,
    );
    expect(new Date(r.last_message_at).getTime()).toBeLessThanOrEqual(Date.now());
  });

  it('defect 9: a reply bumps its conversation: unread count and status', async () => {
    const [conv] = await queryRows<{ unread_count: number; status: string }>(
      t.handle.db,
      sql`
      select c.unread_count, c.status from conversations c join inbox_messages m on m.conversation_id = c.id where m.external_id = 'plain-1@corpus.test'`,
    );
    expect(conv).toEqual({ unread_count: 4, status: 'À répondre' }); // the original, two replies, one same-subject follow-up
  });

  it('defect 7: a second run imports nothing, not even the mail without a Message-ID', async () => {
    const before = (await messagesOf(t.handle.db, companyId)).length;
    const again = await runSync(t.handle, d, { env: { MAX_ATTACHMENT_BYTES: String(1024 * 1024) } });
    expect(again.body.stats).toMatchObject({ synced: 1, messagesImported: 0 });
    expect((await messagesOf(t.handle.db, companyId)).length).toBe(before);
  });

  it('defect 7 (harder): after a cursor reset the whole corpus is re-scanned and still nothing is imported twice', async () => {
    await t.handle.db.execute(sql`update inbox_integrations set uid_validity = null, last_uid = null where id = ${integrationId}`);
    const before = (await messagesOf(t.handle.db, companyId)).length;
    const again = await runSync(t.handle, d, { env: { MAX_ATTACHMENT_BYTES: String(1024 * 1024) } });
    expect(again.body.stats).toMatchObject({ synced: 1, messagesImported: 0 });
    expect(again.body.stats).toMatchObject({ messagesDuplicate: corpus.length - 1, messagesPoison: 1 });
    const [p] = await queryRows<{ n: number }>(t.handle.db, sql`select count(*)::int as n from inbox_poison_messages`);
    expect(p.n).toBe(1); // recorded once
    expect((await messagesOf(t.handle.db, companyId)).length).toBe(before);
  });
});
