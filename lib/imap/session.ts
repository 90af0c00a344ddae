/**
 * The IMAP session (imapflow): connect with mandatory TLS, log in, measure, close. The commands on
 * a session are in commands.ts, its deadline in deadline.ts. Nothing here touches the database.
 */
import type { ConnectionOptions } from 'node:tls';
import type { ImapFlow } from 'imapflow';
import { ImapDeadline } from './deadline.js';
import { classifyImapError, ImapSyncError, isCertificateCode, type CertificateInfo } from './errors.js';

/** `pass` for password mailboxes; `accessToken` (SASL XOAUTH2) for OAuth ones (docs/oauth-mailboxes.md). */
export type ImapTarget = { host: string; port: number; useSsl: boolean; user: string } & ({ pass: string } | { accessToken: string });

export type ImapSessionOptions = {
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  socketTimeoutMs: number;
  /** Extra TLS options (tests trust their throwaway CA this way; verification stays on). */
  tls?: ConnectionOptions;
  /** Called with the verb of every command the client sends (the benchmark counts round trips). */
  onCommand?: (verb: string) => void;
  /** warn/error lines of imapflow itself (never credentials: imapflow masks LOGIN). */
  onWarn?: (msg: string) => void;
};

export { classifyImapError, ImapSyncError } from './errors.js';

/** The IMAPS port (implicit TLS), when a mailbox names none. */
export const DEFAULT_IMAP_PORT = 993;

/** Time given to the credential-free handshake that reads a refused certificate. */
export const CERT_PROBE_TIMEOUT_MS = 3_000;

/**
 * Connects, secures and logs in: the one place where a session is set up (a later sign-in method,
 * e.g. OAuth, plugs in here). `use_ssl` → implicit TLS; otherwise STARTTLS is required
 * (`doSTARTTLS: true`): a server that does not offer it fails the connection before LOGIN, so a
 * password never crosses the network in clear. Bounded by `deadline` as a whole; a certificate
 * refusal is reported with the certificate's subject and issuer.
 */
export async function connectAndLogin(target: ImapTarget, opts: ImapSessionOptions, deadline: ImapDeadline): Promise<ImapFlow> {
  if (deadline.remainingMs() <= 0) throw deadline.error('connect');
  const logger = {
    trace: () => {},
    debug: (o: { src?: string; msg?: string }) => {
      if (o?.src === 'c' && typeof o.msg === 'string' && opts.onCommand) {
        const verb = /^\S+\s+(?:UID\s+)?(\S+)/i.exec(o.msg)?.[1];
        if (verb && !o.msg.startsWith('(*')) opts.onCommand(verb.toUpperCase());
      }
    },
    info: () => {},
    warn: (o: { msg?: string }) => opts.onWarn?.(String(o?.msg ?? '')),
    error: (o: { msg?: string }) => opts.onWarn?.(String(o?.msg ?? '')),
    fatal: (o: { msg?: string }) => opts.onWarn?.(String(o?.msg ?? '')),
  };
  // loaded when a mailbox is synced, not at import: a cold start with nothing to sync skips it
  const { ImapFlow } = await import('imapflow');
  const client = new ImapFlow({
    host: target.host,
    port: target.port,
    secure: target.useSsl,
    doSTARTTLS: target.useSsl ? undefined : true,
    servername: serverName(target.host),
    auth: 'accessToken' in target ? { user: target.user, accessToken: target.accessToken } : { user: target.user, pass: target.pass },
    logger: logger as never,
    connectionTimeout: opts.connectTimeoutMs,
    greetingTimeout: opts.greetingTimeoutMs,
    socketTimeout: opts.socketTimeoutMs,
    disableAutoIdle: true, // one short session per run: an IDLE would only cost round trips
    tls: { minVersion: 'TLSv1.2', ...opts.tls },
    clientInfo: { name: 'Lokario inbox-sync' },
  });
  // kept to name the cause: after a socket timeout or reset, the command in flight only sees "closed"
  client.on('error', (err: unknown) => {
    if (!emittedErrors.has(client)) emittedErrors.set(client, err);
  });
  deadline.arm(client);
  try {
    await client.connect();
  } catch (err) {
    deadline.disarm();
    client.close();
    if (deadline.expired) throw deadline.error('connect');
    const e = classifyImapError(underlyingError(client, err), 'connect');
    if (isCertificateCode(e.code)) {
      const certificate = await probeCertificate(target, opts, Math.min(CERT_PROBE_TIMEOUT_MS, deadline.remainingMs())).catch(() => null);
      if (certificate) throw new ImapSyncError(e.code, e.message, certificate);
    }
    throw e;
  }
  return client;
}

const emittedErrors = new WeakMap<ImapFlow, unknown>();

/**
 * The error that explains a failed command: when the command only saw the connection close
 * (NoConnection), the error the connection itself reported first (a socket timeout, a reset).
 */
export function underlyingError(client: ImapFlow, err: unknown): unknown {
  const code = (err as { code?: unknown })?.code;
  const closed = code === 'NoConnection' || code === 'ClosedAfterConnectText' || code === 'ClosedAfterConnectTLS';
  return closed && emittedErrors.has(client) ? emittedErrors.get(client) : err;
}

/** SNI and certificate name: the host name, never an IP literal. */
const serverName = (host: string) => (/^[\d.]+$|:/.test(host) ? undefined : host);

const dnText = (dn: unknown) =>
  Object.entries((dn ?? {}) as Record<string, string | string[]>)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(', ') || '?';

/**
 * Reads the certificate a server presents, after verification refused it: a second handshake with
 * verification off that sends nothing but STARTTLS (never a credential) and is closed at once.
 */
export async function probeCertificate(
  target: ImapTarget,
  opts: Pick<ImapSessionOptions, 'tls'>,
  timeoutMs: number,
): Promise<CertificateInfo | null> {
  if (timeoutMs <= 0) return null;
  const net = await import('node:net');
  const tls = await import('node:tls');
  return new Promise<CertificateInfo | null>((resolve) => {
    const sockets: import('node:net').Socket[] = [];
    // the TLS socket first: destroying the plain socket under a live TLS one aborts the process (Node 20)
    const done = (v: CertificateInfo | null) => {
      clearTimeout(timer);
      for (const s of [...sockets].reverse()) s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    const handshake = (socket?: import('node:net').Socket) => {
      const t = tls.connect(
        {
          ...(socket ? { socket } : { host: target.host, port: target.port }),
          servername: serverName(target.host),
          minVersion: 'TLSv1.2',
          ...opts.tls,
          rejectUnauthorized: false,
        },
        () => {
          const c = t.getPeerCertificate();
          done(
            c && c.subject
              ? {
                  subject: dnText(c.subject),
                  issuer: dnText(c.issuer),
                  validFrom: c.valid_from,
                  validTo: c.valid_to,
                  altNames: c.subjectaltname ?? null,
                }
              : null,
          );
        },
      );
      sockets.push(t);
      t.on('error', () => done(null));
    };
    if (target.useSsl) {
      handshake();
      return;
    }
    const plain = net.connect({ host: target.host, port: target.port });
    sockets.push(plain);
    plain.on('error', () => done(null));
    let buf = '';
    let sent = false;
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      if (!sent && /^\* OK/m.test(buf)) {
        sent = true;
        buf = '';
        plain.write('P1 STARTTLS\r\n');
        return;
      }
      if (sent && /^P1 OK/m.test(buf)) {
        plain.removeListener('data', onData);
        handshake(plain);
      } else if (sent && /^P1 (NO|BAD)/m.test(buf)) done(null);
    };
    plain.on('data', onData);
  });
}

/**
 * Bytes received on the session's socket from now on (after login, so the socket is the final
 * one, TLS or STARTTLS): the measure of the link. Returns a reader of the running count.
 */
export function countReceivedBytes(client: ImapFlow): () => number {
  let n = 0;
  const socket = (client as unknown as { socket?: import('node:net').Socket }).socket;
  socket?.on('data', (d: Buffer) => {
    n += d.length;
  });
  return () => n;
}

/** LOGOUT when the connection is healthy; a plain close when it is not. Never throws. */
export async function closeSession(client: ImapFlow): Promise<void> {
  try {
    if (client.usable) await client.logout();
    else client.close();
  } catch {
    client.close();
  }
}
