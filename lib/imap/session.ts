/**
 * The IMAP side (imapflow): connect with mandatory TLS, log in, open the folder read-only, list
 * UIDs, fetch sizes/Message-IDs and sources. Nothing here touches the database.
 */
import type { ConnectionOptions } from 'node:tls';
import type { ImapFlow, FetchMessageObject } from 'imapflow';
import { classifyImapError, ImapSyncError, isCertificateCode, type CertificateInfo } from './errors.js';

/** What the server said when the folder was opened (EXAMINE). */
export type FolderState = { uidValidity: number; uidNext: number; exists: number; highestModseq?: string };

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

/**
 * The run's deadline over one IMAP session: when it comes, the connection is closed, which settles
 * whatever was in flight (connect, greeting, login, SEARCH, a FETCH still streaming) at once.
 * Socket-idle timeouts alone never bound a link that keeps trickling bytes.
 */
export class ImapDeadline {
  /** Set when the deadline closed the connection: what fails afterwards failed because of it. */
  expired = false;
  private timer: NodeJS.Timeout | undefined;
  constructor(readonly at: number) {}
  remainingMs(now = Date.now()): number { return Math.max(0, this.at - now); }
  /** Closes `client` at the deadline (immediately when it has passed). */
  arm(client: ImapFlow): void {
    this.disarm();
    const fire = () => { this.expired = true; client.close(); };
    const ms = this.remainingMs();
    if (ms <= 0) { fire(); return; }
    this.timer = setTimeout(fire, ms);
  }
  disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
  /** The error to report instead of what imapflow threw, once the deadline closed the connection. */
  error(phase: string): ImapSyncError {
    return new ImapSyncError('deadline', `run deadline reached during ${phase}`);
  }
}

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
  client.on('error', (err: unknown) => { if (!emittedErrors.has(client)) emittedErrors.set(client, err); });
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

const dnText = (dn: unknown) => Object.entries((dn ?? {}) as Record<string, string | string[]>).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`).join(', ') || '?';

/**
 * Reads the certificate a server presents, after verification refused it: a second handshake with
 * verification off that sends nothing but STARTTLS (never a credential) and is closed at once.
 */
export async function probeCertificate(target: ImapTarget, opts: Pick<ImapSessionOptions, 'tls'>, timeoutMs: number): Promise<CertificateInfo | null> {
  if (timeoutMs <= 0) return null;
  const net = await import('node:net');
  const tls = await import('node:tls');
  return new Promise<CertificateInfo | null>((resolve) => {
    const sockets: import('node:net').Socket[] = [];
    // the TLS socket first: destroying the plain socket under a live TLS one aborts the process (Node 20)
    const done = (v: CertificateInfo | null) => { clearTimeout(timer); for (const s of [...sockets].reverse()) s.destroy(); resolve(v); };
    const timer = setTimeout(() => done(null), timeoutMs);
    const handshake = (socket?: import('node:net').Socket) => {
      const t = tls.connect({
        ...(socket ? { socket } : { host: target.host, port: target.port }),
        servername: serverName(target.host), minVersion: 'TLSv1.2', ...opts.tls, rejectUnauthorized: false,
      }, () => {
        const c = t.getPeerCertificate();
        done(c && c.subject ? { subject: dnText(c.subject), issuer: dnText(c.issuer), validFrom: c.valid_from, validTo: c.valid_to, altNames: c.subjectaltname ?? null } : null);
      });
      sockets.push(t);
      t.on('error', () => done(null));
    };
    if (target.useSsl) { handshake(); return; }
    const plain = net.connect({ host: target.host, port: target.port });
    sockets.push(plain);
    plain.on('error', () => done(null));
    let buf = '';
    let sent = false;
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      if (!sent && /^\* OK/m.test(buf)) { sent = true; buf = ''; plain.write('P1 STARTTLS\r\n'); return; }
      if (sent && /^P1 OK/m.test(buf)) { plain.removeListener('data', onData); handshake(plain); }
      else if (sent && /^P1 (NO|BAD)/m.test(buf)) done(null);
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
  socket?.on('data', (d: Buffer) => { n += d.length; });
  return () => n;
}

/**
 * STATUS: the cursor's inputs in one round trip, without selecting the folder (imapflow's
 * mailboxOpen would add a LIST and an LSUB first). The no-change fast path stops here.
 */
export async function folderStatus(client: ImapFlow, folder: string): Promise<FolderState> {
  try {
    const st = await client.status(folder, { uidNext: true, uidValidity: true, messages: true, highestModseq: client.capabilities.has('CONDSTORE') });
    if (!st || st.uidValidity === undefined || st.uidNext === undefined) throw new ImapSyncError('mailbox', `STATUS of "${folder}" gave no UIDVALIDITY/UIDNEXT`);
    return {
      uidValidity: Number(st.uidValidity),
      uidNext: Number(st.uidNext),
      exists: Number(st.messages ?? 0),
      highestModseq: st.highestModseq !== undefined ? String(st.highestModseq) : undefined,
    };
  } catch (err) {
    const e = classifyImapError(err);
    throw e.code === 'protocol' ? new ImapSyncError('mailbox', `cannot read folder "${folder}": ${e.message}`) : e;
  }
}

/** EXAMINE (read-only SELECT): the user's `\Seen` flags can never change. */
export async function examineFolder(client: ImapFlow, folder: string): Promise<FolderState> {
  try {
    const box = await client.mailboxOpen(folder, { readOnly: true });
    return {
      uidValidity: Number(box.uidValidity),
      uidNext: box.uidNext,
      exists: box.exists,
      highestModseq: box.highestModseq !== undefined ? box.highestModseq.toString() : undefined,
    };
  } catch (err) {
    const e = classifyImapError(err);
    throw e.code === 'protocol' ? new ImapSyncError('mailbox', `cannot open folder "${folder}": ${e.message}`) : e;
  }
}

/** IMAP dates are days; SINCE is inclusive of that (server-local) day. */
export async function searchUidsSince(client: ImapFlow, since: Date): Promise<number[]> {
  const res = await client.search({ since }, { uid: true });
  return Array.isArray(res) ? res : [];
}

export async function searchUidsFrom(client: ImapFlow, fromUid: number): Promise<number[]> {
  const res = await client.search({ uid: `${fromUid}:*` }, { uid: true });
  return Array.isArray(res) ? res : [];
}

export type MessageMeta = { uid: number; size: number; messageId: string | null };

/** UIDs as an IMAP sequence set with ranges (`1:50,52`): shorter commands for both sides to parse. */
export function toSequenceSet(uids: readonly number[]): string {
  const sorted = [...uids].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const start = sorted[i];
    while (i + 1 < sorted.length && sorted[i + 1] <= sorted[i] + 1) i++;
    parts.push(start === sorted[i] ? String(start) : `${start}:${sorted[i]}`);
  }
  return parts.join(',');
}

/** The Message-ID header's value in a header block (folded lines joined), or null. */
export function messageIdFromHeaderBlock(block: Buffer | undefined): string | null {
  if (!block) return null;
  const m = /^message-id[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)/im.exec(block.toString('latin1'));
  const v = m?.[1].replace(/\r?\n[ \t]+/g, ' ').trim();
  return v ? v : null;
}

/**
 * Size and Message-ID of some UIDs: decides what to download, before any body is fetched. Only
 * the Message-ID header is asked for (`BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]`): an ENVELOPE
 * would make both sides build and parse addresses and subjects nobody reads here.
 */
export async function fetchMeta(client: ImapFlow, uids: readonly number[]): Promise<MessageMeta[]> {
  if (!uids.length) return [];
  const rows = await client.fetchAll(toSequenceSet(uids), { uid: true, size: true, headers: ['message-id'] }, { uid: true });
  return rows.map((r: FetchMessageObject) => ({ uid: r.uid, size: r.size ?? 0, messageId: messageIdFromHeaderBlock(r.headers) }));
}

/**
 * Full sources (BODY.PEEK[]: never sets \Seen) of some UIDs, as the server sends them: one FETCH
 * command, each message handed out as soon as it has arrived. imapflow reads the next response
 * only when the previous one was taken, so a slow consumer slows the download instead of piling
 * messages up in memory. No other command can run on the session until this one is over.
 */
export async function* streamSources(client: ImapFlow, uids: readonly number[]): AsyncGenerator<{ uid: number; source: Buffer }> {
  if (!uids.length) return;
  for await (const m of client.fetch(toSequenceSet(uids), { uid: true, source: true }, { uid: true })) {
    if (m.source) yield { uid: m.uid, source: m.source };
  }
}

/** Header blocks only (BODY.PEEK[HEADER]), for messages over MAX_MESSAGE_BYTES. */
export async function fetchHeaders(client: ImapFlow, uids: readonly number[]): Promise<Map<number, Buffer>> {
  const out = new Map<number, Buffer>();
  if (!uids.length) return out;
  for await (const m of client.fetch(toSequenceSet(uids), { uid: true, headers: true }, { uid: true })) {
    if (m.headers) out.set(m.uid, Buffer.concat([m.headers, Buffer.from('\r\n')]));
  }
  return out;
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
