import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { createCompany, createIntegration, integrationRow, newMailbox, runSync } from '../helpers/inbox-fixtures.js';
import { publicErrorText } from '../../lib/cron/errors.js';
import { freePort } from '../../devtools/ports.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');

/** Certificates made with openssl for this file: a CA the job trusts, and server certificates that are wrong in one way each. */
function makeCertificates(dir: string) {
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
  run([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=Lokario Test CA/O=Tests',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
  ]);
  const signed = (name: string, subject: string, san: string, days: string) => {
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
    run([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      days,
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    ]);
  };
  signed('good', '/CN=127.0.0.1', 'IP:127.0.0.1', '2');
  signed('wrongname', '/CN=mail.ailleurs.test', 'DNS:mail.ailleurs.test', '2');
  signed('expired', '/CN=127.0.0.1', 'IP:127.0.0.1', '-1'); // not after < not before: expired since it was made
  run([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=imap.autosigne.test/O=Inconnu',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    'self.key',
    '-out',
    'self.pem',
  ]);
  const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
  const pair = (n: string) => ({ key: read(`${n}.key`), cert: read(`${n}.pem`) });
  return { ca: read('ca.pem'), good: pair('good'), wrongname: pair('wrongname'), expired: pair('expired'), self: pair('self') };
}

type Servers = { close(): Promise<void> };
const open = new Set<Servers>();

/** An implicit-TLS IMAP server with the given certificate: greets, then answers as `onLine` says. */
async function tlsImap(pair: { key: string; cert: string }, onLine: (s: tls.TLSSocket, tag: string, cmd: string) => void = () => {}) {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer(pair, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.write('* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] test server\r\n');
    s.on('data', (buf) => {
      for (const line of buf.toString().split('\r\n').filter(Boolean)) {
        const [tag, cmd] = line.split(' ');
        onLine(s, tag, (cmd ?? '').toUpperCase());
      }
    });
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const handle = {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  open.add(handle);
  return handle;
}

async function tcpSilent() {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const handle = {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  open.add(handle);
  return handle;
}

describeImap('inbox-sync: each connection failure names its cause (real sockets, openssl certificates, real PostgreSQL)', () => {
  let t: TestDatabase;
  let d: Dovecot;
  let certs: ReturnType<typeof makeCertificates>;
  let dir: string;
  beforeAll(async () => {
    t = await createTestDatabase('inboxconnect');
    d = await startDovecot({ pool: 4 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lokario-certs-'));
    certs = makeCertificates(dir);
  }, 60_000);
  afterAll(async () => {
    for (const s of open) await s.close();
    await d?.stop();
    await t?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** One run against one integration; returns its error and the stored status. */
  async function failure(over: { port: number; tls?: boolean; host?: string }, env: Record<string, string> = {}, status = 'error') {
    const db = t.handle.db;
    const companyId = await createCompany(db);
    const id = await createIntegration(db, companyId, d, 'someone@test.local', 'secret-pw', over);
    const started = Date.now();
    const r = await runSync(t.handle, d, { scope: { companyId }, env, job: { tls: { ca: certs.ca } } });
    expect(httpStatusOf(r)).toBe(200);
    const errors = r.body.errors as { code: string; message: string }[];
    expect(errors).toHaveLength(1);
    const row = await integrationRow(db, id);
    expect(row).toMatchObject({ last_sync_status: status, consecutive_failures: 1, sync_lease_until: null });
    // the response lists the public form of what the row keeps (hosts and ports removed, 300 characters)
    expect(errors[0].message).toBe(publicErrorText(row.last_sync_error!, [], 300));
    return { ...errors[0], stored: row.last_sync_error!, ms: Date.now() - started };
  }

  it('a trusted certificate is accepted (the control case: the fake server then refuses the login)', async () => {
    const srv = await tlsImap(certs.good, (s, tag, cmd) => {
      if (cmd === 'LOGIN' || cmd === 'AUTHENTICATE') s.write(`${tag} NO [AUTHENTICATIONFAILED] nope\r\n`);
      else s.write(`${tag} OK done\r\n`);
    });
    expect((await failure({ port: srv.port, tls: true }, {}, 'auth_error')).code).toBe('auth_failed');
  });

  it('untrusted (self-signed) certificate: cert_untrusted, with its subject and issuer', async () => {
    const srv = await tlsImap(certs.self);
    const e = await failure({ port: srv.port, tls: true });
    expect(e.code).toBe('cert_untrusted');
    expect(e.message).toMatch(/signé par aucune autorité de confiance/);
    expect(e.message).toMatch(/sujet « CN=imap\.autosigne\.test, O=Inconnu »/);
    expect(e.message).toMatch(/émetteur « CN=imap\.autosigne\.test, O=Inconnu »/);
    expect(e.message).not.toMatch(/STARTTLS/);
  });

  it('untrusted certificate over STARTTLS (real Dovecot, its certificate not trusted): cert_untrusted, not "no STARTTLS"', async () => {
    const box = newMailbox(d, 'untrusted');
    const db = t.handle.db;
    const companyId = await createCompany(db);
    await createIntegration(db, companyId, d, box.user, box.password);
    const r = await runSync(t.handle, d, { scope: { companyId }, job: { tls: { ca: certs.ca } } });
    const [e] = r.body.errors as { code: string; message: string }[];
    expect(e.code).toBe('cert_untrusted');
    expect(e.message).toMatch(/sujet « CN=localhost »/);
    expect(e.message).not.toMatch(/n'offre pas de connexion chiffrée/);
  });

  it('certificate for another name: cert_hostname_mismatch', async () => {
    const srv = await tlsImap(certs.wrongname);
    const e = await failure({ port: srv.port, tls: true });
    expect(e.code).toBe('cert_hostname_mismatch');
    // the stored error names the configured host; the HTTP response hides addresses
    expect(e.stored).toMatch(/n'est pas établi pour le nom « 127\.0\.0\.1 »/);
    expect(e.message).toMatch(/n'est pas établi pour le nom « \[address\] »/);
    expect(e.message).toMatch(/mail\.ailleurs\.test/);
    expect(e.message).toMatch(/émetteur « CN=Lokario Test CA, O=Tests »/);
  });

  it('expired certificate: cert_expired', async () => {
    const srv = await tlsImap(certs.expired);
    const e = await failure({ port: srv.port, tls: true });
    expect(e.code).toBe('cert_expired');
    expect(e.message).toMatch(/expiré/);
  });

  it('no STARTTLS offered: starttls_not_offered, and the password is never sent', async () => {
    const received: string[] = [];
    const sockets = new Set<net.Socket>();
    const plain = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.write('* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] plaintext only\r\n');
      s.on('data', (buf) => {
        for (const line of buf.toString().split('\r\n').filter(Boolean)) {
          received.push(line);
          const [tag, cmd] = line.split(' ');
          s.write(/^CAPABILITY$/i.test(cmd) ? `* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n${tag} OK done\r\n` : `${tag} OK done\r\n`);
        }
      });
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', () => r()));
    open.add({
      close: () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          plain.close(() => r());
        }),
    });
    const e = await failure({ port: (plain.address() as net.AddressInfo).port });
    expect(e.code).toBe('starttls_not_offered');
    expect(e.message).toMatch(/n'offre pas de connexion chiffrée \(STARTTLS\)/);
    expect(received.join('\n')).not.toMatch(/LOGIN|AUTHENTICATE|secret-pw/i);
  });

  it('connection refused: connection_refused', async () => {
    const e = await failure({ port: await freePort(), tls: true });
    expect(e.code).toBe('connection_refused');
  });

  it('unknown host name: dns_failed', async () => {
    const e = await failure({ port: 993, tls: true, host: 'imap.nexiste-pas.invalid' });
    expect(e.code).toBe('dns_failed');
    expect(e.message).toMatch(/introuvable \(DNS\)/);
  });

  it('TCP accepted, TLS never answered: timeout_connect', async () => {
    const srv = await tcpSilent();
    const e = await failure({ port: srv.port, tls: true }, { IMAP_CONNECT_TIMEOUT_MS: '500' });
    expect(e.code).toBe('timeout_connect');
  });

  it('TCP accepted, no greeting: timeout_greeting', async () => {
    const srv = await tcpSilent();
    const e = await failure({ port: srv.port }, { IMAP_GREETING_TIMEOUT_MS: '500' });
    expect(e.code).toBe('timeout_greeting');
  });

  it('greets, never answers the login: timeout_login', async () => {
    const srv = await tlsImap(certs.good, (s, tag, cmd) => {
      if (cmd !== 'LOGIN' && cmd !== 'AUTHENTICATE') s.write(`${tag} OK done\r\n`);
    });
    const e = await failure({ port: srv.port, tls: true }, { IMAP_SOCKET_TIMEOUT_MS: '500' });
    expect(e.code).toBe('timeout_login');
  });

  it('a server slower than the whole budget at every step: the run answers within budget + 5 s, the mailbox is partial, not failed', async () => {
    // greets, then answers nothing, with every timeout longer than the budget
    const srv = await tlsImap(certs.good, () => {});
    const db = t.handle.db;
    const companyId = await createCompany(db);
    const id = await createIntegration(db, companyId, d, 'slow@test.local', 'pw', { port: srv.port, tls: true });
    const started = Date.now();
    const r = await runSync(t.handle, d, {
      scope: { companyId },
      env: { CRON_BUDGET_MS: '4000', IMAP_SOCKET_TIMEOUT_MS: '60000', IMAP_GREETING_TIMEOUT_MS: '60000', IMAP_CONNECT_TIMEOUT_MS: '60000' },
      job: { tls: { ca: certs.ca } },
    });
    expect(Date.now() - started).toBeLessThan(4_000 + 5_000);
    expect(r.body).toMatchObject({ partial: true });
    expect(r.body.stats).toMatchObject({ failed: 0, incomplete: 1 });
    expect(await integrationRow(db, id)).toMatchObject({ last_sync_status: 'partial', consecutive_failures: 0, sync_lease_until: null });
  });
});
