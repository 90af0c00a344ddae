/**
 * The commands of one IMAP session: open the folder read-only, list UIDs, fetch sizes/Message-IDs
 * and sources. Nothing here touches the database.
 */
import type { ImapFlow, FetchMessageObject } from 'imapflow';
import type { ImapDeadline } from './deadline.js';
import { classifyImapError, ImapSyncError } from './errors.js';
import { underlyingError } from './session.js';

/** What the server said when the folder was opened (EXAMINE). */
export type FolderState = { uidValidity: number; uidNext: number; exists: number; highestModseq?: string };

/**
 * STATUS: the cursor's inputs in one round trip, without selecting the folder (imapflow's
 * mailboxOpen would add a LIST and an LSUB first). The no-change fast path stops here.
 */
export async function folderStatus(client: ImapFlow, folder: string): Promise<FolderState> {
  try {
    const st = await client.status(folder, {
      uidNext: true,
      uidValidity: true,
      messages: true,
      highestModseq: client.capabilities.has('CONDSTORE'),
    });
    if (!st || st.uidValidity === undefined || st.uidNext === undefined)
      throw new ImapSyncError('mailbox', `STATUS of "${folder}" gave no UIDVALIDITY/UIDNEXT`);
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

/** Runs one IMAP command of the session; once the deadline closed the connection, says so instead. */
export async function imapStep<T>(client: ImapFlow, deadline: ImapDeadline, phase: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw deadline.expired ? deadline.error(phase) : classifyImapError(underlyingError(client, err));
  }
}
