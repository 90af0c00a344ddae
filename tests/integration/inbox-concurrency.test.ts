import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { createCompany, createIntegration, newMailbox, runSync, simpleMail } from '../helpers/inbox-fixtures.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');

describeImap('inbox-sync: simultaneous invocations (real Dovecot, real PostgreSQL)', () => {
  let t: TestDatabase;
  let d: Dovecot;
  beforeAll(async () => {
    t = await createTestDatabase('inboxconc');
    d = await startDovecot();
  }, 60_000);
  afterAll(async () => {
    await d?.stop();
    await t?.drop();
  });

  async function fill(companyId: number, prefix: string, mailboxes: number, perBox: number, shared: string[]) {
    for (let b = 0; b < mailboxes; b++) {
      const box = newMailbox(d, prefix);
      // each mailbox has its own mail plus the same messages (one email sent to several addresses)
      await d.append(box.user, box.password, [
        ...Array.from({ length: perBox }, (_, i) =>
          simpleMail(`${prefix}-${b}-${i}@t`, { from: `Client ${i % 7} <client${i % 7}@exemple.fr>`, subject: `Sujet ${i % 5}` }),
        ),
        ...shared,
      ]);
      await createIntegration(t.handle.db, companyId, d, box.user, box.password);
    }
  }

  async function counts(companyId: number) {
    const [r] = await queryRows<{ messages: number; distinct_ids: number; clients: number; distinct_clients: number; empty_convs: number }>(
      t.handle.db,
      sql`
      select (select count(*)::int from inbox_messages where company_id = ${companyId}) as messages,
             (select count(distinct external_id)::int from inbox_messages where company_id = ${companyId}) as distinct_ids,
             (select count(*)::int from clients where company_id = ${companyId}) as clients,
             (select count(distinct lower(email))::int from clients where company_id = ${companyId}) as distinct_clients,
             (select count(*)::int from conversations c where company_id = ${companyId} and not exists (select 1 from inbox_messages m where m.conversation_id = c.id)) as empty_convs`,
    );
    return r;
  }

  it('5 simultaneous invocations of the route: one runs, four answer already-running, every message imported once', async () => {
    const companyId = await createCompany(t.handle.db);
    const shared = [simpleMail('shared-a@t', { from: 'Cc <cc@exemple.fr>' }), simpleMail('shared-b@t', { from: 'Cc <cc@exemple.fr>' })];
    await fill(companyId, 'lease', 3, 20, shared);
    const results = await Promise.all(Array.from({ length: 5 }, () => runSync(t.handle, d, { scope: { companyId } })));
    expect(results.filter((r) => r.body.skipped === true)).toHaveLength(4);
    expect(await counts(companyId)).toEqual({ messages: 62, distinct_ids: 62, clients: 8, distinct_clients: 8, empty_convs: 0 });
  });

  it('5 overlapping invocations that do not share a run lease (misconfigured shards): per-integration claims and unique keys still import every message once', async () => {
    const companyId = await createCompany(t.handle.db);
    const shared = [simpleMail('shared-c@t', { from: 'Cc <cc@exemple.fr>' }), simpleMail('shared-d@t', { from: 'Dd <dd@exemple.fr>' })];
    await fill(companyId, 'shard', 4, 30, shared);
    const scopes = [
      { companyId },
      {},
      { shard: { k: 0, n: 1 } },
      { shard: { k: companyId % 2, n: 2 } },
      { shard: { k: companyId % 3, n: 3 } },
    ];
    const results = await Promise.all(scopes.map((scope) => runSync(t.handle, d, { scope })));
    for (const r of results) expect(httpStatusOf(r)).toBe(200);
    const imported = results.reduce((n, r) => n + ((r.body.stats as { messagesImported?: number })?.messagesImported ?? 0), 0);
    expect(imported).toBe(4 * 30 + 2);
    expect(await counts(companyId)).toEqual({ messages: 122, distinct_ids: 122, clients: 9, distinct_clients: 9, empty_convs: 0 });
    const synced = results.reduce((n, r) => n + ((r.body.stats as { synced?: number })?.synced ?? 0), 0);
    // an integration may be synced again by a later overlapping run (fast path, nothing new); never twice at once
    expect(synced).toBeGreaterThanOrEqual(4);
    const [leases] = await queryRows<{ n: number }>(
      t.handle.db,
      sql`select count(*)::int as n from inbox_integrations where sync_lease_until is not null`,
    );
    expect(leases.n).toBe(0);
  });
});
