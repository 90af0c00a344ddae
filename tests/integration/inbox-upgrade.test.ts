import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import type { AddressObject } from 'mailparser';
import { queryRows } from '../../db/client.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { realWorldMessages } from '../helpers/mail-corpus.js';
import { createCompany, createIntegration, messagesOf, newMailbox, runSync } from '../helpers/inbox-fixtures.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');

/**
 * The key the previous version stored for a message without a Message-ID, recomputed here
 * independently of lib/ (its parser call and its hash, as they were): sha256 of the sender, the
 * raw Date header, mailparser's subject and mailparser's plain text.
 */
async function keyOfPreviousVersion(raw: Buffer): Promise<string> {
  const { simpleParser } = await import('mailparser');
  const p = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true, keepCidLinks: false });
  const from = (p.from as AddressObject | undefined)?.value[0]?.address?.trim().toLowerCase() ?? '';
  const date = p.headerLines
    .find((h) => h.key === 'date')!
    .line.replace(/^[^:]*:/, '')
    .replace(/\r?\n[ \t]+/g, ' ')
    .trim();
  const h = createHash('sha256');
  for (const part of [from, date, p.subject ?? '', (p.text ?? '').trim().replace(/\r\n/g, '\n').trim()]) {
    h.update(part);
    h.update('\u0000');
  }
  return `hash:${h.digest('hex')}`;
}

describeImap('inbox-sync: upgrading a database filled by the previous version (real Dovecot, real PostgreSQL)', () => {
  let t: TestDatabase;
  let d: Dovecot;
  let companyId: number;
  let integrationId: number;
  let box: { user: string; password: string };
  // every real-world message without a Message-ID, plus a plain one the old key handled well
  const noId = realWorldMessages().filter((m) => m.name.startsWith('no-id-'));
  const plainNoId = Buffer.from(
    'From: Paul <paul@exemple.fr>\r\nTo: contact@lokario-test.fr\r\nSubject: Sans identifiant\r\nDate: Mon, 12 Jan 2026 10:00:00 +0100\r\n\r\nTexte simple\r\n',
  );
  const raws = [...noId.map((m) => m.raw), plainNoId];
  let legacy: string[];
  let droppedByOldVersion: number;

  beforeAll(async () => {
    t = await createTestDatabase('inboxupgrade');
    d = await startDovecot();
    box = newMailbox(d, 'upgrade');
    await d.append(box.user, box.password, raws);
    companyId = await createCompany(t.handle.db);
    integrationId = await createIntegration(t.handle.db, companyId, d, box.user, box.password);
    // The state the previous version left: one row per distinct legacy key (it dropped the later
    // messages sharing a key), stored under that key, kind unknown (the column's default).
    const first = await runSync(t.handle, d);
    expect(first.body.stats).toMatchObject({ messagesImported: raws.length });
    legacy = await Promise.all(raws.map(keyOfPreviousVersion));
    const rows = await messagesOf(t.handle.db, companyId); // in UID order
    const seen = new Set<string>();
    droppedByOldVersion = 0;
    for (let i = 0; i < rows.length; i++) {
      if (seen.has(legacy[i])) {
        droppedByOldVersion++;
        await t.handle.db.execute(sql`delete from message_attachments where message_id = ${rows[i].id}`);
        await t.handle.db.execute(sql`delete from inbox_messages where id = ${rows[i].id}`);
      } else {
        await t.handle.db.execute(
          sql`update inbox_messages set external_id = ${legacy[i]}, kind = 'person', external_metadata = external_metadata - 'legacy_key' where id = ${rows[i].id}`,
        );
      }
      seen.add(legacy[i]);
    }
  }, 120_000);
  afterAll(async () => {
    await d?.stop();
    await t?.drop();
  });

  it('the previous version merged the pairs: 3 messages of the corpus were never stored', () => {
    expect(droppedByOldVersion).toBe(3); // attachment-only, HTML-only, same text other photo
  });

  it('the first run after the upgrade imports nothing (the cursor is where the old version left it)', async () => {
    const r = await runSync(t.handle, d);
    expect(r.body.stats).toMatchObject({ synced: 1, messagesImported: 0 });
    expect(await messagesOf(t.handle.db, companyId)).toHaveLength(raws.length - droppedByOldVersion);
  });

  it('a full re-scan after the upgrade imports nothing twice, takes the old rows over and recovers the dropped messages', async () => {
    const before = await messagesOf(t.handle.db, companyId);
    await t.handle.db.execute(sql`update inbox_integrations set uid_validity = null, last_uid = null where id = ${integrationId}`);
    const r = await runSync(t.handle, d);
    expect(r.body.stats).toMatchObject({
      synced: 1,
      messagesImported: droppedByOldVersion,
      messagesDuplicate: raws.length - droppedByOldVersion,
    });
    const after = await messagesOf(t.handle.db, companyId);
    expect(after).toHaveLength(raws.length);
    // the old rows are still there (same ids), now under the new key, with their kind
    for (const old of before) {
      const row = after.find((a) => a.id === old.id)!;
      expect(row.external_id).toMatch(/^sha256:/);
      expect(row.external_metadata.legacy_key).toBe(old.external_id);
    }
    expect(after.every((a) => a.external_id.startsWith('sha256:'))).toBe(true);
    expect(new Set(after.map((a) => a.external_id)).size).toBe(raws.length);
  });

  it('another re-scan, and a copy of the mailbox in another folder, import nothing', async () => {
    await t.handle.db.execute(sql`update inbox_integrations set uid_validity = null, last_uid = null where id = ${integrationId}`);
    const again = await runSync(t.handle, d);
    expect(again.body.stats).toMatchObject({ messagesImported: 0, messagesDuplicate: raws.length });
    await d.append(box.user, box.password, raws, 'Archives');
    await createIntegration(t.handle.db, companyId, d, box.user, box.password, { folder: 'Archives' });
    const copy = await runSync(t.handle, d);
    expect(copy.body.stats).toMatchObject({ messagesImported: 0 });
    const [n] = await queryRows<{ n: number }>(
      t.handle.db,
      sql`select count(*)::int as n from inbox_messages where company_id = ${companyId}`,
    );
    expect(n.n).toBe(raws.length);
  });
});
