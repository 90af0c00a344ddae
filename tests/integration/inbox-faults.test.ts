import net from 'node:net';
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
import { httpStatusOf } from '../../lib/cron/outcome.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');
const HOUR = 3_600_000;

/** A TCP server on a free port; `onConnection` decides what it says. */
async function tcpServer(onConnection: (s: net.Socket) => void) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConnection(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A pass-through proxy to Dovecot whose connections can be cut at any moment (a server dying mid-fetch). */
async function cuttableProxy(target: number) {
  let cut = false;
  let budget = Infinity; // server-to-client bytes still relayed before the cut
  const live = new Set<net.Socket>();
  const cutNow = () => {
    cut = true;
    for (const s of live) s.destroy();
  };
  const srv = await tcpServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const up = net.connect({ host: '127.0.0.1', port: target });
    live.add(client);
    live.add(up);
    up.on('error', () => client.destroy());
    client.pipe(up);
    up.on('data', (chunk: Buffer) => {
      budget -= chunk.length;
      if (budget < 0) {
        cutNow();
        return;
      } // this chunk never arrives
      if (!client.write(chunk)) {
        up.pause();
        client.once('drain', () => up.resume());
      }
    });
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
  });
  return {
    ...srv,
    cutNow,
    /** Cuts as soon as the server has sent `bytes` more (TLS included). */
    cutAfterServerBytes(bytes: number) {
      budget = bytes;
    },
    restore() {
      cut = false;
      budget = Infinity;
    },
  };
}

describeImap('inbox-sync: failures (real Dovecot, real PostgreSQL)', () => {
  let t: TestDatabase;
  let d: Dovecot;
  beforeAll(async () => {
    t = await createTestDatabase('inboxfaults');
    d = await startDovecot();
  }, 60_000);
  afterAll(async () => {
    await d?.stop();
    await t?.drop();
  });

  it('wrong password: auth_error, back-off, and after 3 in a row the mailbox is paused with one notification', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'auth');
    const companyId = await createCompany(db);
    const id = await createIntegration(db, companyId, d, box.user, 'not-the-password');
    const t0 = Date.now();
    const r1 = await runSync(t.handle, d, { scope: { companyId }, now: new Date(t0) });
    expect(httpStatusOf(r1)).toBe(200);
    expect(r1.body.stats).toMatchObject({ synced: 0, failed: 1, paused: 0 });
    expect((r1.body.errors as { code: string }[])[0]).toMatchObject({ scope: 'inbox_integration', id, code: 'auth_failed' });
    let row = await integrationRow(db, id);
    expect(row).toMatchObject({ last_sync_status: 'auth_error', consecutive_failures: 1, sync_lease_until: null });
    expect(new Date(row.next_sync_at!).getTime()).toBe(t0 + 5 * 60_000);
    expect(row.last_sync_error).toMatch(/Identifiants refusés/);

    // still backing off: the next run does not even try
    const early = await runSync(t.handle, d, { scope: { companyId }, now: new Date(t0 + 60_000) });
    expect(early.body.stats).toMatchObject({ integrations: 0 });

    await runSync(t.handle, d, { scope: { companyId }, now: new Date(t0 + HOUR) });
    expect(await integrationRow(db, id)).toMatchObject({ last_sync_status: 'auth_error', consecutive_failures: 2 });
    const r3 = await runSync(t.handle, d, { scope: { companyId }, now: new Date(t0 + 2 * HOUR) });
    expect(r3.body.stats).toMatchObject({ failed: 0, paused: 1 });
    row = await integrationRow(db, id);
    expect(row).toMatchObject({ last_sync_status: 'paused', consecutive_failures: 3 });
    const [active] = await queryRows<{ is_active: boolean }>(db, sql`select is_active from inbox_integrations where id = ${id}`);
    expect(active.is_active).toBe(true);

    // paused: never selected again, never notified twice
    const r4 = await runSync(t.handle, d, { scope: { companyId }, now: new Date(t0 + 10 * HOUR) });
    expect(r4.body.stats).toMatchObject({ integrations: 0 });
    const notes = await queryRows<{ type: string; title: string; source_id: number; link_url: string }>(
      db,
      sql`
      select type::text, title, source_id, link_url from notifications where company_id = ${companyId}`,
    );
    expect(notes).toEqual([
      {
        type: 'INBOX_INTEGRATION_PAUSED',
        title: 'Synchronisation de la boîte mail suspendue',
        source_id: id,
        link_url: 'http://localhost:3000/inbox?settings=integrations',
      },
    ]);
    const [status] = await queryRows<{ n: number }>(
      db,
      sql`select count(*)::int as n from inbox_integrations where id = ${id} and last_sync_status in ('error', 'auth_error', 'paused')`,
    );
    expect(status.n).toBe(1); // what /cron/status counts
  });

  it('a Fernet token that does not verify fails that integration clearly; the ciphertext is never tried as a password', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'fernet');
    const companyId = await createCompany(db);
    const id = await createIntegration(db, companyId, d, box.user, box.password);
    await db.execute(
      sql`update inbox_integrations set email_password = 'gAAAAA' || substr(email_password, 7, 20) || 'tampered' || substr(email_password, 35) where id = ${id}`,
    );
    const commands: string[] = [];
    const r = await runSync(t.handle, d, { scope: { companyId }, job: { onCommand: (_i, v) => commands.push(v) } });
    expect((r.body.errors as { code: string }[])[0]).toMatchObject({ code: 'credentials_undecryptable' });
    expect(commands).toEqual([]); // no connection at all
    expect(await integrationRow(db, id)).toMatchObject({ last_sync_status: 'error', consecutive_failures: 1 });
  });

  it('defect 11: a server that accepts TCP but never greets times out; the run goes on and the lease is released', async () => {
    const db = t.handle.db;
    const silent = await tcpServer(() => {
      /* never says a word */
    });
    try {
      const companyId = await createCompany(db);
      const id = await createIntegration(db, companyId, d, 'x@test.local', 'pw', { port: silent.port });
      const r = await runSync(t.handle, d, {
        scope: { companyId },
        env: { IMAP_GREETING_TIMEOUT_MS: '300', IMAP_CONNECT_TIMEOUT_MS: '300' },
      });
      expect(httpStatusOf(r)).toBe(200);
      expect((r.body.errors as { code: string }[])[0]).toMatchObject({ code: 'timeout_greeting' });
      const row = await integrationRow(db, id);
      expect(row).toMatchObject({ last_sync_status: 'error', consecutive_failures: 1, sync_lease_until: null });
      expect(row.next_sync_at).not.toBeNull();
    } finally {
      await silent.close();
    }
  });

  it('defect 3: without use_ssl, a server that does not offer STARTTLS never receives the password', async () => {
    const db = t.handle.db;
    const received: string[] = [];
    const plain = await tcpServer((s) => {
      s.write('* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] plaintext only\r\n');
      s.on('data', (buf) => {
        for (const line of buf.toString().split('\r\n').filter(Boolean)) {
          received.push(line);
          const [tag, cmd] = line.split(' ');
          if (/^CAPABILITY$/i.test(cmd)) s.write(`* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n${tag} OK done\r\n`);
          else s.write(`${tag} OK done\r\n`);
        }
      });
    });
    try {
      const companyId = await createCompany(db);
      const id = await createIntegration(db, companyId, d, 'victim@test.local', 'super-secret-password', { port: plain.port });
      const r = await runSync(t.handle, d, { scope: { companyId } });
      expect((r.body.errors as { code: string }[])[0]).toMatchObject({ code: 'starttls_not_offered' });
      expect(received.join('\n')).not.toMatch(/LOGIN|AUTHENTICATE|super-secret-password/i);
      expect((await integrationRow(db, id)).last_sync_status).toBe('error');
    } finally {
      await plain.close();
    }
  });

  it('one bad mailbox among three good ones: the three sync', async () => {
    const db = t.handle.db;
    const companyId = await createCompany(db);
    const good = [newMailbox(d, 'g1'), newMailbox(d, 'g2'), newMailbox(d, 'g3')];
    for (const [i, b] of good.entries()) {
      await d.append(b.user, b.password, [simpleMail(`good-${i}@t`)]);
      await createIntegration(db, companyId, d, b.user, b.password);
    }
    const bad = await createIntegration(db, companyId, d, 'nobody@test.local', 'wrong');
    const r = await runSync(t.handle, d, { scope: { companyId } });
    expect(r.body.stats).toMatchObject({ integrations: 4, synced: 3, failed: 1, messagesImported: 3 });
    expect((r.body.errors as { id: number }[]).map((e) => e.id)).toEqual([bad]);
  });

  it('the server dies mid-fetch: the integration fails with back-off, what was stored stays, and the next run completes with nothing twice', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'cut');
    const total = 120;
    const body = 'x'.repeat(76).concat('\r\n').repeat(500); // ~39 KB: a segment of 50 is ~2 MB on the wire
    await d.append(
      box.user,
      box.password,
      Array.from({ length: total }, (_, i) => simpleMail(`die-${i + 1}@t`, { body })),
    );
    const proxy = await cuttableProxy(d.port);
    try {
      const companyId = await createCompany(db);
      const id = await createIntegration(db, companyId, d, box.user, box.password, { port: proxy.port });
      const t0 = Date.now();
      // the server dies once it has sent 3 MB of sources: segment 1 (UIDs 1–50, ~2 MB) arrived
      // whole, segment 2 (~2–4 MB) did not, whether the sources come in one FETCH or several
      let fetches = 0;
      const onCommand = (_id: number, verb: string) => {
        if (verb === 'FETCH' && ++fetches === 2) proxy.cutAfterServerBytes(3_000_000);
      };
      const r1 = await runSync(t.handle, d, { scope: { companyId }, now: new Date(t0), job: { onCommand } });
      expect(httpStatusOf(r1)).toBe(200);
      expect(r1.body.stats).toMatchObject({ failed: 1, messagesImported: 50 });
      expect((r1.body.errors as { code: string }[])[0].code).toBe('connection_lost');
      const mid = await integrationRow(db, id);
      expect(mid).toMatchObject({ last_sync_status: 'error', consecutive_failures: 1, sync_lease_until: null });
      expect(Number(mid.last_uid)).toBe(50);

      proxy.restore();
      const r2 = await runSync(t.handle, d, { scope: { companyId }, now: new Date(t0 + 3_600_000) });
      expect(r2.body.stats).toMatchObject({ synced: 1, messagesImported: total - 50, messagesDuplicate: 0 });
      expect((await messagesOf(db, companyId)).map((m) => m.external_id)).toEqual(
        Array.from({ length: total }, (_, i) => `die-${i + 1}@t`),
      );
      expect(await integrationRow(db, id)).toMatchObject({
        last_sync_status: 'success',
        consecutive_failures: 0,
        last_sync_error: null,
        next_sync_at: null,
      });
    } finally {
      await proxy.close();
    }
  });

  it('the server dies right after the first commit, with later segments already downloaded: whole segments are stored, the cursor follows them, the next run imports the rest once', async () => {
    const db = t.handle.db;
    const box = newMailbox(d, 'cut-late');
    // 8 segments of ~5 MB: more than the pipeline and the socket buffers can hold, so the run
    // must reach the dead connection; segments that arrived whole before that are stored
    const total = 400;
    const body = 'y'.repeat(76).concat('\r\n').repeat(1_300); // ~100 KB
    await d.append(
      box.user,
      box.password,
      Array.from({ length: total }, (_, i) => simpleMail(`late-${i + 1}@t`, { body })),
    );
    const proxy = await cuttableProxy(d.port);
    try {
      const companyId = await createCompany(db);
      const id = await createIntegration(db, companyId, d, box.user, box.password, { port: proxy.port });
      const t0 = Date.now();
      const r1 = await runSync(t.handle, d, {
        scope: { companyId },
        now: new Date(t0),
        job: { hooks: { afterSegment: () => proxy.cutNow() } },
      });
      expect(r1.body.stats).toMatchObject({ failed: 1 });
      expect((r1.body.errors as { code: string }[])[0].code).toBe('connection_lost');
      const stored = (r1.body.stats as { messagesImported: number }).messagesImported;
      expect(stored % 50).toBe(0); // whole segments only, in UID order
      expect(stored).toBeGreaterThanOrEqual(50);
      expect(stored).toBeLessThan(total);
      const mid = await integrationRow(db, id);
      expect(Number(mid.last_uid)).toBe(stored);
      expect((await messagesOf(db, companyId)).map((m) => m.external_id)).toEqual(
        Array.from({ length: stored }, (_, i) => `late-${i + 1}@t`),
      );

      proxy.restore();
      const r2 = await runSync(t.handle, d, { scope: { companyId }, now: new Date(t0 + 3_600_000) });
      expect(r2.body.stats).toMatchObject({ synced: 1, messagesImported: total - stored, messagesDuplicate: 0 });
      expect((await messagesOf(db, companyId)).map((m) => m.external_id)).toEqual(
        Array.from({ length: total }, (_, i) => `late-${i + 1}@t`),
      );
    } finally {
      await proxy.close();
    }
  });
});
