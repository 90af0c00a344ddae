import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ImapFlow } from 'imapflow';
import { freePort } from './ports.js';

/**
 * A real Dovecot (tests never mock IMAP) on free loopback ports with a throwaway configuration, passwd-file
 * and maildir under os.tmpdir(): a plain listener that offers STARTTLS and an implicit-TLS
 * listener, both with a self-signed certificate made by `openssl req`. Recipe and traps:
 * stack-notes §4 (stdio 'ignore' or the spawn hangs; chmod 755 so `nobody` reaches the mail).
 */

const CANDIDATES = ['/usr/sbin/dovecot', '/usr/local/sbin/dovecot', '/usr/bin/dovecot'];

export function dovecotBinary(): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, 'dovecot');
    if (dir && fs.existsSync(p)) return p;
  }
  return CANDIDATES.find((p) => fs.existsSync(p)) ?? null;
}

export const hasDovecot = () => dovecotBinary() !== null;

async function waitForGreeting(port: number, opts: { tls?: boolean } = {}, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      sock.setTimeout(1000);
      // the TLS listener speaks only after a handshake: accepting the connection is enough
      if (opts.tls)
        sock.once('connect', () => {
          sock.destroy();
          resolve(true);
        });
      sock.once('data', (d) => {
        sock.destroy();
        resolve(d.toString().startsWith('* OK'));
      });
      sock.once('error', () => resolve(false));
      sock.once('timeout', () => {
        sock.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`Dovecot did not greet on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function idOf(flag: '-u' | '-g', name: string): number {
  return Number(execFileSync('id', [flag, name]).toString().trim());
}

export type Dovecot = {
  host: string;
  /** Plain IMAP that offers STARTTLS. */
  port: number;
  /** Implicit TLS. */
  tlsPort: number;
  /** The self-signed certificate (PEM): pass it as `ca` to trust this server. */
  cert: string;
  /**
   * Adds a user to the passwd-file. Dovecot re-reads the file at most once per second, so this
   * waits for the next second; prefer `takeMailbox()` from the pool made at start.
   */
  addUser(user: string, password: string): Promise<void>;
  /** A fresh, empty mailbox from the pool of users created at start. */
  takeMailbox(): { user: string; password: string };
  /** A connected, logged-in imapflow client for filling mailboxes (caller logs out). */
  client(user: string, password: string): Promise<ImapFlow>;
  /** Appends raw messages to a user's folder (creates the folder when missing). */
  append(user: string, password: string, messages: (string | Buffer)[], folder?: string, internalDate?: Date): Promise<void>;
  stop(): Promise<void>;
  dir: string;
};

export type DovecotOptions = {
  users?: Record<string, string>;
  pool?: number;
  /**
   * OAuth 2.0 sign-in (SASL XOAUTH2 and OAUTHBEARER) through Dovecot's `oauth2` passdb: every
   * token is checked by POSTing it to this RFC 7662 introspection endpoint, which answers
   * `{"active": true, "username": "<login>"}` for a valid one. Passwords keep working.
   */
  oauth2?: { introspectionUrl: string };
};

/** Dovecot 2.3's oauth2 passdb settings (doc.dovecot.org/2.3 "Open Authentication v2.0 database"). */
function oauth2Conf(introspectionUrl: string): string {
  return `introspection_mode = post
introspection_url = ${introspectionUrl}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
`;
}

export async function startDovecot(opts: DovecotOptions = {}): Promise<Dovecot> {
  const bin = dovecotBinary();
  if (!bin) throw new Error('dovecot is not installed (apt-get install -y dovecot-imapd)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lokario-dovecot-'));
  fs.chmodSync(dir, 0o755);
  const [port, tlsPort] = [await freePort(), await freePort()];
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  const usersFile = path.join(dir, 'users');
  const users: Record<string, string> = { ...(opts.users ?? {}) };
  const pool = Array.from({ length: opts.pool ?? 40 }, (_, i) => ({
    user: `box${i + 1}@test.local`,
    password: `pw-${i + 1}-${Math.random().toString(36).slice(2, 8)}`,
  }));
  for (const p of pool) users[p.user] = p.password;
  const writeUsers = () =>
    fs.writeFileSync(
      usersFile,
      Object.entries(users)
        .map(([u, p]) => `${u}:{PLAIN}${p}::::::\n`)
        .join(''),
    );
  writeUsers();
  const mailDir = path.join(dir, 'mail');
  fs.mkdirSync(mailDir);
  const root = process.getuid?.() === 0;
  let userdb: string;
  let extra = '';
  if (root) {
    const [uid, gid] = [idOf('-u', 'nobody'), idOf('-g', 'nobody')];
    fs.chownSync(mailDir, uid, gid);
    userdb = `uid=${uid} gid=${gid} home=${mailDir}/%u`;
  } else {
    const me = os.userInfo();
    const group = execFileSync('id', ['-gn']).toString().trim();
    userdb = `uid=${me.uid} gid=${me.gid} home=${mailDir}/%u`;
    extra = `default_internal_user = ${me.username}\ndefault_internal_group = ${group}\ndefault_login_user = ${me.username}\nfirst_valid_uid = 1\n`;
  }
  for (const sub of ['run', 'state']) fs.mkdirSync(path.join(dir, sub));
  const conf = path.join(dir, 'dovecot.conf');
  let oauthPassdb = '';
  if (opts.oauth2) {
    const ext = path.join(dir, 'dovecot-oauth2.conf.ext');
    fs.writeFileSync(ext, oauth2Conf(opts.oauth2.introspectionUrl));
    oauthPassdb = `passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = ${ext}\n}\n`;
  }
  fs.writeFileSync(
    conf,
    `base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = lokario-test-${path.basename(dir)}
log_path = ${dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <${certFile}
ssl_key = <${keyFile}
disable_plaintext_auth = no
auth_mechanisms = plain login${opts.oauth2 ? ' xoauth2 oauthbearer' : ''}
auth_failure_delay = 0
${extra}${oauthPassdb}passdb {
  driver = passwd-file
${opts.oauth2 ? '  mechanisms = plain login\n' : ''}  args = scheme=PLAIN username_format=%u ${usersFile}
}
userdb {
  driver = static
  args = ${userdb}
}
mail_location = maildir:~/Maildir
mail_fsync = never
namespace inbox {
  inbox = yes
  separator = /
}
service imap-login {
  chroot =
  inet_listener imap {
    port = ${port}
  }
  inet_listener imaps {
    port = ${tlsPort}
    ssl = yes
  }
}
service anvil {
  chroot =
}
protocol imap {
  mail_max_userip_connections = 200
}
`,
  );
  const started = spawnSync(bin, ['-c', conf], { stdio: 'ignore' });
  if (started.status !== 0) throw new Error(`dovecot failed to start (exit ${started.status}); see ${dir}/dovecot.log`);
  await waitForGreeting(port);
  await waitForGreeting(tlsPort, { tls: true });
  const cert = fs.readFileSync(certFile, 'utf8');

  const client = async (user: string, password: string) => {
    const c = new ImapFlow({
      host: '127.0.0.1',
      port,
      secure: false,
      auth: { user, pass: password },
      logger: false,
      tls: { ca: cert, servername: 'localhost' },
      disableAutoIdle: true,
    });
    c.on('error', () => {});
    await c.connect();
    return c;
  };
  return {
    host: '127.0.0.1',
    port,
    tlsPort,
    cert,
    dir,
    async addUser(user, password) {
      users[user] = password;
      writeUsers();
      await new Promise((r) => setTimeout(r, 1001 - (Date.now() % 1000)));
    },
    takeMailbox() {
      const next = pool.shift();
      if (!next) throw new Error('the Dovecot user pool is exhausted: start it with a larger `pool`');
      return next;
    },
    client,
    async append(user, password, messages, folder = 'INBOX', internalDate) {
      const c = await client(user, password);
      try {
        if (folder !== 'INBOX') await c.mailboxCreate(folder).catch(() => {});
        for (const m of messages) await c.append(folder, m, [], internalDate);
      } finally {
        await c.logout().catch(() => c.close());
      }
    },
    async stop() {
      const pidFile = path.join(dir, 'run', 'master.pid');
      const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim()) : NaN;
      if (Number.isInteger(pid)) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
        const until = Date.now() + 10_000;
        while (Date.now() < until) {
          try {
            process.kill(pid, 0);
          } catch {
            break;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
