/**
 * Malformed parts end to end (real Dovecot, real PostgreSQL): 60 real messages with random part
 * header lines emptied or truncated, synced by the job: none is poison, each is stored once (or
 * recognised as a copy of one already stored), and the run succeeds.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { buildCorpus } from '../helpers/mail-corpus.js';
import { mutateHeaders, prng } from '../helpers/header-fuzz.js';
import { createCompany, createIntegration, newMailbox, runSync } from '../helpers/inbox-fixtures.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');
const SEED = 20261207;

describeImap('inbox-sync: malformed part headers never lose a message (real Dovecot, real PostgreSQL)', () => {
  let t: TestDatabase;
  let d: Dovecot;
  beforeAll(async () => {
    t = await createTestDatabase('inboxfuzz');
    d = await startDovecot();
  }, 60_000);
  afterAll(async () => {
    await d?.stop();
    await t?.drop();
  });

  it('60 fuzzed messages: 0 poison, every one stored or recognised as a copy', async () => {
    const r = prng(SEED);
    const base = buildCorpus().filter((c) => !c.expect.poison && !c.expect.oversize);
    const fuzzed = Array.from({ length: 60 }, (_, i) => mutateHeaders(base[i % base.length].raw, r).raw);
    const box = newMailbox(d, 'fuzz');
    await d.append(box.user, box.password, fuzzed);
    const companyId = await createCompany(t.handle.db);
    await createIntegration(t.handle.db, companyId, d, box.user, box.password);
    const res = await runSync(t.handle, d, { env: { MAX_ATTACHMENT_BYTES: String(1024 * 1024) } });
    expect(res.body).toMatchObject({ success: true, partial: false });
    const stats = res.body.stats as { messagesImported: number; messagesDuplicate: number; messagesPoison: number };
    expect(stats.messagesPoison, `seed ${SEED}`).toBe(0);
    expect(stats.messagesImported + stats.messagesDuplicate).toBe(fuzzed.length);
    const [poison] = await queryRows<{ n: number }>(t.handle.db, sql`select count(*)::int as n from inbox_poison_messages`);
    expect(poison.n).toBe(0);
  }, 120_000);
});
