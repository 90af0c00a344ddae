/**
 * One mailbox's IMAP session: connect and log in, plan, then download → parse → store segments
 * in UID order, each stored with its cursor, all within the run's deadline (docs/inbox-sync.md).
 */
import type { ConnectionOptions } from 'node:tls';
import type { ImapFlow } from 'imapflow';
import { isTransientDbError, type Db } from '../../../db/client.js';
import { budgetSpent, type JobContext } from '../../cron/types.js';
import type { GrantDeps } from '../../oauth/grant.js';
import { planSync, uidsToProcess, type Cursor, type SyncPlan } from './cursor.js';
import type { FolderState } from '../../imap/commands.js';
import {
  closeSession,
  connectAndLogin,
  countReceivedBytes,
  underlyingError,
  DEFAULT_IMAP_PORT,
  type ImapSessionOptions,
} from '../../imap/session.js';
import {
  examineFolder,
  folderStatus,
  fetchHeaders,
  fetchMeta,
  imapStep,
  streamSources,
  searchUidsFrom,
  searchUidsSince,
} from '../../imap/commands.js';
import { ImapDeadline } from '../../imap/deadline.js';
import { FIRST_META_CHUNK, linkTooSlowNote, nextThroughput, syncLimits, type SyncLimits } from '../../imap/sizing.js';
import { mapSerial, readAhead } from './pipeline.js';
import { parseItems, type ParsedMessage } from '../../mime/parse.js';
import { storeSegment, type SegmentResult } from './store.js';
import { normaliseMessageId } from '../../mail/message-id.js';
import { addSeg, bodyLimit, emptySeg, planSegments, segmentParseItems, type DownloadedSegment, type SizeRule } from './plan.js';
import { blockedDomainsOf, knownExternalIds, toNum, type IntegrationRow } from './sql.js';

export { FETCH_GROUP_BYTES, META_CHUNK, SEGMENT_BYTES, SEGMENT_MESSAGES } from '../../imap/sizing.js';
/** Segments a stage may get ahead of the next one (one download in flight while storing). */
export const PIPELINE_DEPTH = 1;
/** The IMAP work of a run ends this long before its deadline (the connection is closed then,
 *  whatever is in flight): time to store what was downloaded, write the status and answer. */
export const STOP_RESERVE_MS = 3_000;

export type SyncHooks = {
  /** Stop at the next message boundary (the job wires the run's deadline here). */
  shouldStop?: () => boolean;
  /** After each committed segment (tests cut the connection here). */
  afterSegment?: (info: { integrationId: number; lastUid: number }) => void | Promise<void>;
};

export type InboxSyncOptions = {
  tls?: ConnectionOptions;
  onCommand?: (integrationId: number, verb: string) => void;
  hooks?: SyncHooks;
  /** OAuth mailboxes: the token endpoint's fetch and refresh hooks (tests). */
  oauth?: Pick<GrantDeps, 'fetch' | 'hooks'>;
};

/** What a run learns about the mailbox's link, filled in as it goes (a failed run reports it too). */
export type LinkProgress = {
  /** Bytes received and time spent downloading (sizes, Message-IDs, sources), waits on the consumer excluded. */
  bytes: number;
  ms: number;
  /** The cursor moved (messages stored, or known ones passed). */
  advanced: boolean;
};

export type SessionResult = {
  folder: FolderState;
  plan: SyncPlan;
  planned: number[];
  processed: number;
  stopped: boolean;
  seg: SegmentResult;
};

/**
 * Stores a segment; if the transaction fails, retries message by message so that one bad
 * message is recorded as poison instead of blocking the others (docs/inbox-sync.md, "Failures"). A transient
 * database failure (connection, deadlock) is never blamed on a message: it fails the mailbox's
 * run with the cursor before the segment, and the next run stores the messages.
 */
async function storeWithIsolation(
  db: Db,
  base: Omit<Parameters<typeof storeSegment>[1], 'messages' | 'poison' | 'cursor'>,
  messages: ParsedMessage[],
  poison: { uid: number; error: string }[],
  cursor: { uidValidity: number; lastUid: number },
) {
  try {
    return await storeSegment(db, { ...base, messages, poison, cursor });
  } catch (segmentErr) {
    if (isTransientDbError(segmentErr)) throw segmentErr;
    if (messages.length <= 1 && !poison.length) {
      return storeSegment(db, {
        ...base,
        messages: [],
        poison: messages.map((m) => ({ uid: m.uid, error: `store failed: ${(segmentErr as Error).message}` })),
        cursor,
      });
    }
    const total = emptySeg();
    const ordered = [...messages.map((m) => ({ uid: m.uid, m })), ...poison.map((p) => ({ uid: p.uid, p }))].sort((a, b) => a.uid - b.uid);
    for (const item of ordered) {
      const step = { uidValidity: cursor.uidValidity, lastUid: item.uid };
      if ('p' in item && item.p) addSeg(total, await storeSegment(db, { ...base, messages: [], poison: [item.p], cursor: step }));
      else if ('m' in item && item.m) {
        try {
          addSeg(total, await storeSegment(db, { ...base, messages: [item.m], poison: [], cursor: step }));
        } catch (err) {
          if (isTransientDbError(err)) throw err;
          addSeg(
            total,
            await storeSegment(db, {
              ...base,
              messages: [],
              poison: [{ uid: item.uid, error: `store failed: ${String((err as Error).message).slice(0, 300)}` }],
              cursor: step,
            }),
          );
        }
      }
    }
    addSeg(total, await storeSegment(db, { ...base, messages: [], poison: [], cursor }));
    return total;
  }
}

/**
 * The IMAP stage: sizes and Message-IDs of the planned UIDs (one FETCH per `metaChunk`),
 * then the segments in UID order, each with its sources downloaded. The sources of several
 * segments come from one FETCH (up to `limits.fetchGroupBytes`): each segment is handed out as
 * soon as its last message has arrived, while the rest keeps streaming. Stops before the next
 * FETCH once `stop()` says so; when the run's deadline closes the connection, the segment in
 * flight is dropped and the stage simply ends (what was handed out is stored).
 */
async function* downloadSegments(
  ctx: JobContext,
  client: ImapFlow,
  companyId: number,
  planned: readonly number[],
  sizing: { maxMessage: number; storedRate: number | null },
  stop: () => boolean,
  deadline: ImapDeadline,
  link: LinkProgress,
): AsyncGenerator<DownloadedSegment> {
  const received = countReceivedBytes(client);
  const startedAt = Date.now();
  let waitedMs = 0; // time spent handing a segment to a slower consumer: not the link's
  // before each chunk: the limits from the link as measured so far in this run (else by the previous runs)
  let chunks = 0;
  const currentLimits = (): { limits: SyncLimits; rule: SizeRule } => {
    const rate = nextThroughput(sizing.storedRate, received(), Date.now() - startedAt - waitedMs);
    const limits = syncLimits(rate, deadline.remainingMs());
    // an unmeasured link starts with a small chunk, so that the run measures it before asking for much
    if (rate === null && chunks === 0) limits.metaChunk = FIRST_META_CHUNK;
    return { limits, rule: { maxMessage: sizing.maxMessage, linkMax: limits.linkMaxMessageBytes, bytesPerSec: rate } };
  };
  const hand = async function* (s: DownloadedSegment) {
    const t = Date.now();
    yield s;
    waitedMs += Date.now() - t;
  };
  try {
    for (let c = 0; c < planned.length;) {
      const { limits, rule } = currentLimits();
      chunks++;
      const chunk = planned.slice(c, c + limits.metaChunk);
      c += chunk.length;
      if (stop()) return;
      const metaByUid = new Map((await fetchMeta(client, chunk)).map((m) => [m.uid, m]));
      // known Message-IDs are not downloaded at all (a UIDVALIDITY re-scan costs their Message-ID headers only)
      const headerIds = [...new Set([...metaByUid.values()].map((m) => normaliseMessageId(m.messageId)).filter((x): x is string => !!x))];
      const known = await knownExternalIds(ctx.db, companyId, headerIds);
      const segments = planSegments(chunk, metaByUid, known, rule, limits);
      for (let g = 0; g < segments.length;) {
        if (stop()) return;
        // the next FETCH: consecutive segments, bounded in bytes
        const group: DownloadedSegment[] = [];
        let groupBytes = 0;
        while (g < segments.length && (group.length === 0 || groupBytes + segments[g].bytes <= limits.fetchGroupBytes)) {
          groupBytes += segments[g].bytes;
          group.push(segments[g++].segment);
        }
        // header blocks of the oversize ones first: nothing may run on the session during the stream
        const large = group.flatMap((s) => s.toDownload.filter((m) => m.size > bodyLimit(rule)).map((m) => m.uid));
        const headers = await fetchHeaders(client, large);
        const owner = new Map<number, DownloadedSegment>();
        const missing = new Map<DownloadedSegment, number>();
        for (const s of group) {
          for (const m of s.toDownload) {
            if (m.size > bodyLimit(rule)) {
              const h = headers.get(m.uid);
              if (h) s.headers.set(m.uid, h);
              continue;
            }
            owner.set(m.uid, s);
            missing.set(s, (missing.get(s) ?? 0) + 1);
          }
        }
        let next = 0; // the first segment of the group not handed out yet
        for await (const { uid, source } of streamSources(client, [...owner.keys()])) {
          const s = owner.get(uid);
          if (!s) continue;
          s.sources.set(uid, source);
          missing.set(s, missing.get(s)! - 1);
          while (next < group.length && !missing.get(group[next])) yield* hand(group[next++]);
        }
        // the end of the FETCH: what is still missing was expunged in between, nothing to import
        while (next < group.length) yield* hand(group[next++]);
      }
    }
  } catch (err) {
    // the deadline closed the connection under a command: the segment in flight is dropped
    if (deadline.expired) return;
    throw err;
  } finally {
    link.bytes += received();
    link.ms += Math.max(0, Date.now() - startedAt - waitedMs);
  }
}

/**
 * One mailbox: connect and log in, EXAMINE, plan, then segments in UID order, each stored with its
 * cursor. All the IMAP work ends at `STOP_RESERVE_MS` before the run's deadline: the connection is
 * closed then, the segments already downloaded are stored, the rest waits for the next run. In a
 * dry run, only counts what would be fetched.
 */
export async function syncMailbox(
  ctx: JobContext,
  row: IntegrationRow,
  credentials: { pass: string } | { accessToken: string },
  opts: InboxSyncOptions,
  dryRun: boolean,
  seg: SegmentResult,
  link: LinkProgress,
): Promise<SessionResult> {
  const sessionOpts: ImapSessionOptions = {
    connectTimeoutMs: ctx.config.IMAP_CONNECT_TIMEOUT_MS,
    greetingTimeoutMs: ctx.config.IMAP_GREETING_TIMEOUT_MS,
    socketTimeoutMs: ctx.config.IMAP_SOCKET_TIMEOUT_MS,
    tls: opts.tls,
    onCommand: opts.onCommand ? (verb) => opts.onCommand!(row.id, verb) : undefined,
    onWarn: (msg) => ctx.log.debug({ integrationId: row.id, msg }, 'imap warning'),
  };
  const deadline = new ImapDeadline(ctx.deadline - STOP_RESERVE_MS);
  const client = await connectAndLogin(
    {
      host: row.imap_server!,
      port: row.imap_port ?? DEFAULT_IMAP_PORT,
      useSsl: row.use_ssl,
      user: row.email_address!,
      ...credentials,
    },
    sessionOpts,
    deadline,
  );
  let streaming = false;
  try {
    const folderName = row.imap_folder || 'INBOX';
    const cursor: Cursor = {
      uidValidity: toNum(row.uid_validity),
      lastUid: toNum(row.last_uid),
      highestModseq: row.highest_modseq,
      lastSyncAt: row.last_sync_at,
    };
    const status = await imapStep(client, deadline, 'STATUS', () => folderStatus(client, folderName));
    if (planSync(cursor, status, ctx.now).kind === 'up-to-date')
      return { folder: status, plan: { kind: 'up-to-date' }, planned: [], processed: 0, stopped: false, seg };
    // there is work: select the folder read-only and plan again on what EXAMINE says
    const folder = await imapStep(client, deadline, 'EXAMINE', () => examineFolder(client, folderName));
    const plan = planSync(cursor, folder, ctx.now);
    let planned: number[] = [];
    if (plan.kind === 'uid-range')
      planned = uidsToProcess(await imapStep(client, deadline, 'SEARCH', () => searchUidsFrom(client, plan.fromUid)), plan.fromUid);
    else if (plan.kind === 'since')
      planned = uidsToProcess(await imapStep(client, deadline, 'SEARCH', () => searchUidsSince(client, plan.since)), 1);
    if (dryRun) return { folder, plan, planned, processed: 0, stopped: false, seg };

    const hookStop = () => opts.hooks?.shouldStop?.() ?? false;
    const base = {
      companyId: row.company_id,
      integrationId: row.id,
      blockedDomains: await blockedDomainsOf(ctx.db, row.company_id),
      now: ctx.now,
    };
    const maxAttachment = ctx.config.MAX_ATTACHMENT_BYTES;
    let processed = 0;
    let stopped = false;
    // Three stages overlap, each one segment apart: IMAP downloads segment k+2 while segment k+1
    // is parsed and segment k is stored. Order is kept (segments are stored, and the cursor moves,
    // strictly in UID order).
    const downloaded = readAhead(
      downloadSegments(
        ctx,
        client,
        row.company_id,
        planned,
        { maxMessage: ctx.config.MAX_MESSAGE_BYTES, storedRate: row.sync_bytes_per_sec },
        () => {
          if (hookStop() || deadline.expired) stopped = true;
          return stopped;
        },
        deadline,
        link,
      ),
      PIPELINE_DEPTH,
    );
    const parsed = readAhead(
      mapSerial(downloaded, async (d) => {
        const { items, linkSkipped } = segmentParseItems(d);
        const r = await parseItems(items, { maxAttachmentBytes: maxAttachment });
        for (const m of r.messages) if (linkSkipped.has(m.uid)) m.text = linkTooSlowNote(m.bytes, d.rule.bytesPerSec ?? 1);
        d.sources.clear();
        d.headers.clear();
        return { ...d, ...r };
      }),
      PIPELINE_DEPTH,
    );
    streaming = true;
    let cutShort = false;
    // Leaving early (hook, budget spent, error), the download under way is abandoned, not awaited:
    // the connection is closed first, so unwinding the pipeline does not wait for a FETCH to finish
    // (LOGOUT would also download the rest; the folder is read-only, closing loses nothing).
    // Segments downloaded before the IMAP deadline are still stored, but none starts past the budget.
    try {
      for await (const p of parsed) {
        if (hookStop() || budgetSpent(ctx)) {
          stopped = true;
          cutShort = true;
          client.close();
          break;
        }
        const r = await storeWithIsolation(ctx.db, base, p.messages, p.poison, { uidValidity: folder.uidValidity, lastUid: p.lastUid });
        r.duplicates += p.knownDuplicates;
        addSeg(seg, r);
        processed += p.uids.length;
        link.advanced = true;
        await opts.hooks?.afterSegment?.({ integrationId: row.id, lastUid: p.lastUid });
      }
    } catch (err) {
      client.close();
      // a failed download: named by what the connection reported (a stored segment's failure is not IMAP's)
      throw underlyingError(client, err);
    }
    if (deadline.expired && processed < planned.length) {
      stopped = true;
      cutShort = true;
    }
    if (!cutShort) streaming = false; // every FETCH ran to its end
    return { folder, plan, planned, processed, stopped, seg };
  } finally {
    try {
      if (streaming)
        client.close(); // see above: never LOGOUT behind an abandoned FETCH
      else await closeSession(client); // LOGOUT too is bounded by the deadline
    } finally {
      deadline.disarm();
    }
  }
}
