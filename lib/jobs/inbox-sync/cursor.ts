/**
 * The per-folder IMAP cursor (pure: no I/O; docs/inbox-sync.md, "How a run goes"). Modelled on EmailEngine's: the
 * folder's UIDVALIDITY, the highest UID fully processed, and HIGHESTMODSEQ (kept for a later
 * flag sync; new mail is detected by UIDNEXT alone).
 */
import type { FolderState } from '../../imap/commands.js';

export type Cursor = {
  uidValidity: number | null;
  lastUid: number | null;
  highestModseq: string | null;
  /** Last successful sync: bounds the re-scan after a UIDVALIDITY change. */
  lastSyncAt: Date | null;
};

export type SyncPlan =
  /** Same UIDVALIDITY, UIDNEXT unchanged: nothing to fetch (the EXAMINE was the one round trip). */
  | { kind: 'up-to-date' }
  /** Same UIDVALIDITY: every UID above the cursor, whatever its date (no window, so no gap). */
  | { kind: 'uid-range'; fromUid: number }
  /** First sync or new UIDVALIDITY: the messages received since `since` (IMAP SEARCH SINCE). */
  | { kind: 'since'; since: Date; reason: 'first-sync' | 'uidvalidity-changed' }
  /** The folder is empty: only the cursor is stored. */
  | { kind: 'empty' };

/** The first sync imports the last 14 days, as the original backend did. */
export const FIRST_SYNC_DAYS = 14;
/**
 * After a UIDVALIDITY change the old UIDs mean nothing. The re-scan covers the first-sync window
 * and, when the last successful sync is older, everything since one day before it (SEARCH SINCE
 * is day-granular and INTERNALDATE may lag the Date header), so mail that arrived during an
 * outage is not lost. Message-ID dedupe keeps the overlap from importing anything twice.
 */
export const RESCAN_MARGIN_DAYS = 1;
const DAY_MS = 86_400_000;

export function planSync(cursor: Cursor, folder: FolderState, now: Date): SyncPlan {
  const sameValidity = cursor.uidValidity !== null && cursor.uidValidity === folder.uidValidity;
  if (sameValidity && cursor.lastUid !== null) {
    if (folder.uidNext <= cursor.lastUid + 1) return { kind: 'up-to-date' };
    if (folder.exists === 0) return { kind: 'empty' };
    return { kind: 'uid-range', fromUid: cursor.lastUid + 1 };
  }
  if (folder.exists === 0) return { kind: 'empty' };
  const firstSyncSince = new Date(now.getTime() - FIRST_SYNC_DAYS * DAY_MS);
  if (cursor.uidValidity === null || cursor.lastUid === null) {
    // a first sync that was cut before its first message keeps the same window semantics
    return { kind: 'since', since: firstSyncSince, reason: 'first-sync' };
  }
  const sinceLastSync = cursor.lastSyncAt ? new Date(cursor.lastSyncAt.getTime() - RESCAN_MARGIN_DAYS * DAY_MS) : firstSyncSince;
  const since = sinceLastSync < firstSyncSince ? sinceLastSync : firstSyncSince;
  return { kind: 'since', since, reason: 'uidvalidity-changed' };
}

/**
 * UIDs to process, ascending, above the cursor. A `UID FETCH n:*` with n above every UID returns
 * the last message anyway (RFC 3501: `n:*` is the range between n and the highest UID), so the
 * server's answer is always filtered here.
 */
export function uidsToProcess(serverUids: Iterable<number>, fromUid: number): number[] {
  const out = [...new Set(serverUids)].filter((u) => Number.isInteger(u) && u >= fromUid);
  return out.sort((a, b) => a - b);
}

/**
 * The cursor after a run over `plannedUids` (ascending) of which the first `processedCount` were
 * fully handled (imported, duplicate or recorded as poison). A complete run moves the cursor to
 * UIDNEXT − 1, so the next run takes the no-change fast path; a cut run stops at the last UID
 * handled, so the next one resumes right after it.
 */
export function cursorAfter(
  folder: FolderState,
  plannedUids: readonly number[],
  processedCount: number,
  previous: Cursor,
): Pick<Cursor, 'uidValidity' | 'lastUid' | 'highestModseq'> {
  const sameValidity = previous.uidValidity === folder.uidValidity;
  const base = sameValidity ? previous.lastUid : null;
  const complete = processedCount >= plannedUids.length;
  let lastUid: number | null;
  if (complete) {
    const top = Math.max(folder.uidNext - 1, plannedUids.length ? plannedUids[plannedUids.length - 1] : 0);
    lastUid = Math.max(top, base ?? 0);
  } else if (processedCount > 0) {
    lastUid = Math.max(plannedUids[processedCount - 1], base ?? 0);
  } else if (base !== null) {
    lastUid = base;
  } else {
    // cut before the first message of a (re-)scan: resume just below it, never skip it
    lastUid = plannedUids[0] - 1;
  }
  return {
    uidValidity: folder.uidValidity,
    lastUid,
    highestModseq: complete ? (folder.highestModseq ?? previous.highestModseq) : sameValidity ? previous.highestModseq : null,
  };
}
