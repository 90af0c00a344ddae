import net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { createCompany, createIntegration, newMailbox, runSync, simpleMail } from '../helpers/inbox-fixtures.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');

/**
 * A TCP relay in front of Dovecot that delays every chunk (so sessions overlap as over a real link)
 * and counts the connections open at once: each one is one IMAP login.
 */
async function countingRelay(targetPort: number, delayMs: number) {
  let open = 0;
  let peak = 0;
  let total = 0;
  const server = net.createServer((client) => {
    open++;
    total++;
    peak = Math.max(peak, open);
    const up = net.connect({ host: '127.0.0.1', port: targetPort });
    const pipe = (from: net.Socket, to: net.Socket) => {
      from.on('data', (c) =>
        setTimeout(() => {
          if (!to.destroyed) to.write(c);
        }, delayMs),
      );
      from.on('end', () => setTimeout(() => to.end(), delayMs));
    };
    pipe(client, up);
    pipe(up, client);
    let closed = false;
    for (const s of [client, up]) {
      s.on('error', () => {});
      s.on('close', () => {
        client.destroy();
        up.destroy();
        if (!closed) {
          closed = true;
          open--;
        }
      });
    }
  });
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)));
  return {
    port,
    reset: () => {
      peak = 0;
      total = 0;
    },
    stats: () => ({ peak, total, open }),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describeImap('inbox-sync: per-mail-host cap on concurrent connections (real Dovecot)', () => {
  let t: TestDatabase;
  let d: Dovecot;
  let relay: Awaited<ReturnType<typeof countingRelay>>;
  const MAILBOXES = 12;
  beforeAll(async () => {
    t = await createTestDatabase('hostcap');
    d = await startDovecot({ pool: MAILBOXES });
    relay = await countingRelay(d.port, 15);
    const companies = [await createCompany(t.handle.db), await createCompany(t.handle.db)];
    for (let i = 0; i < MAILBOXES; i++) {
      const box = newMailbox(d);
      await d.append(box.user, box.password, [simpleMail(`cap-${i}@t`)]);
      // the same host for all of them, as many customers on one provider
      await createIntegration(t.handle.db, companies[i % 2], d, box.user, box.password, { port: relay.port });
    }
  }, 60_000);
  afterAll(async () => {
    await relay?.close();
    await d?.stop();
    await t?.drop();
  });

  it('never more than IMAP_HOST_MAX_CONNECTIONS logins at once to one host, whatever SYNC_CONCURRENCY', async () => {
    relay.reset();
    const r = await runSync(t.handle, d, { env: { SYNC_CONCURRENCY: '8', IMAP_HOST_MAX_CONNECTIONS: '3' } });
    expect(r.body.stats).toMatchObject({ synced: MAILBOXES, failed: 0 });
    const s = relay.stats();
    expect(s.total).toBe(MAILBOXES);
    expect(s.peak).toBeLessThanOrEqual(3);
    expect(s.peak).toBeGreaterThanOrEqual(2); // the cap, not the lack of concurrency, is what held it
  }, 60_000);

  it('without a tight cap the same run opens more at once (the measure can fail)', async () => {
    relay.reset();
    const r = await runSync(t.handle, d, { env: { SYNC_CONCURRENCY: '8', IMAP_HOST_MAX_CONNECTIONS: '10' } });
    expect(r.body.stats).toMatchObject({ synced: MAILBOXES });
    expect(relay.stats().peak).toBeGreaterThan(3);
  }, 60_000);

  it('two shards at once in one process share the cap of 4: never more than 4 together', async () => {
    relay.reset();
    const env = { SYNC_CONCURRENCY: '8', IMAP_HOST_MAX_CONNECTIONS: '4' };
    const rs = await Promise.all([0, 1].map((k) => runSync(t.handle, d, { env, scope: { shard: { k, n: 2 } } })));
    expect(rs.reduce((n, r) => n + Number((r.body.stats as { synced: number }).synced), 0)).toBe(MAILBOXES);
    expect(relay.stats().peak).toBeLessThanOrEqual(4);
    expect(relay.stats().peak).toBeGreaterThanOrEqual(3);
  }, 60_000);
});
