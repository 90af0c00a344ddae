/**
 * The IMAP side (imapflow): connect with mandatory TLS, log in, open the folder read-only, list
 * UIDs, fetch sizes/Message-IDs and sources. Nothing here touches the database.
 */
import type { ConnectionOptions } from 'node:tls';
import type { ImapFlow, FetchMessageObject } from 'imapflow';
import type { FolderState } from './cursor.js';

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

export class ImapSyncError extends Error {
  constructor(readonly code: 'auth_failed' | 'tls_required' | 'timeout' | 'connection' | 'mailbox' | 'protocol', message: string) {
    super(message);
  }
}

/** Maps what imapflow throws to the few cases the job treats differently (SPEC §5.1.8). */
export function classifyImapError(err: unknown): ImapSyncError {
  if (err instanceof ImapSyncError) return err;
  const e = err as { authenticationFailed?: boolean; tlsFailed?: boolean; code?: string; message?: string; responseText?: string; serverResponseCode?: string };
  const msg = String(e.responseText || e.message || err).slice(0, 300);
  if (e.authenticationFailed || e.serverResponseCode === 'AUTHENTICATIONFAILED') return new ImapSyncError('auth_failed', `login refused: ${msg}`);
  if (e.tlsFailed) return new ImapSyncError('tls_required', `TLS required but not available: ${msg}`);
  if (e.code === 'ETIMEOUT' || e.code === 'CONNECT_TIMEOUT' || e.code === 'GREETING_TIMEOUT' || /timeout/i.test(msg)) return new ImapSyncError('timeout', msg);
  if (e.code === 'NoConnection' || /ECONNREFUSED|ECONNRESET|EPIPE|ENOTFOUND|EHOSTUNREACH|closed|Connection not available/i.test(`${e.code} ${msg}`)) return new ImapSyncError('connection', msg);
  return new ImapSyncError('protocol', msg);
}

/**
 * Connects and logs in. `use_ssl` → implicit TLS; otherwise STARTTLS is required
 * (`doSTARTTLS: true`): a server that does not offer it fails the connection before LOGIN,
 * so a password never crosses the network in clear (defect 3).
 */
export async function openSession(target: ImapTarget, opts: ImapSessionOptions): Promise<ImapFlow> {
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
    servername: /^[\d.]+$|:/.test(target.host) ? undefined : target.host,
    auth: 'accessToken' in target ? { user: target.user, accessToken: target.accessToken } : { user: target.user, pass: target.pass },
    logger: logger as never,
    connectionTimeout: opts.connectTimeoutMs,
    greetingTimeout: opts.greetingTimeoutMs,
    socketTimeout: opts.socketTimeoutMs,
    disableAutoIdle: true, // one short session per run: an IDLE would only cost round trips
    tls: { minVersion: 'TLSv1.2', ...opts.tls },
    clientInfo: { name: 'Lokario inbox-sync' },
  });
  // a socket error after connect() would otherwise be an unhandled 'error' event
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    client.close();
    throw classifyImapError(err);
  }
  return client;
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
