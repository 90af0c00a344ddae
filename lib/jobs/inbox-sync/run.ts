/**
 * inbox-sync (SPEC §5.1): select due integrations, claim each with its own lease, sync them
 * with bounded concurrency inside the run's budget, and always leave the status columns and
 * the lease in a truthful state.
 */
import type { ConnectionOptions } from 'node:tls';
import type { ImapFlow } from 'imapflow';
import pLimit from 'p-limit';
import { sql } from 'drizzle-orm';
import { isTransientDbError, queryRows, type Db } from '../../../db/client.js';
import { budgetSpent, type ItemError, type Job, type JobContext, type JobResult } from '../../cron/types.js';
import { scopeFilter } from '../../cron/scope.js';
import { decryptStoredSecret, FernetError, passwordForHost } from '../../crypto/fernet.js';
import { parseCompanySettings } from '../../settings.js';
import { maskEmail } from '../../log.js';
import { NEEDS_REAUTH, OAuthError, withAccessToken, type GrantDeps } from '../../oauth/grant.js';
import { cursorAfter, planSync, uidsToProcess, type Cursor, type FolderState, type SyncPlan } from './cursor.js';
import {
  closeSession, connectAndLogin, countReceivedBytes, underlyingError, examineFolder, folderStatus, fetchHeaders, fetchMeta, ImapDeadline, streamSources,
  searchUidsFrom, searchUidsSince, type ImapSessionOptions, type MessageMeta,
} from './imap.js';
import { classifyImapError, frenchImapError, ImapSyncError } from './errors.js';
import { FIRST_META_CHUNK, linkTooSlowNote, nextThroughput, syncLimits, type SyncLimits } from './sizing.js';
import { mapSerial, readAhead } from './pipeline.js';
import { parseItems, type ParseItem, type ParsedMessage } from './parse.js';
import { storeSegment, type SegmentResult } from './store.js';
import { createHostLimiter } from './host-limit.js';
import { afterInboxSync } from '../../bounces/after-sync.js';
import { AUTH_FAILURES_BEFORE_PAUSE, nextSyncAfterFailure, normaliseMessageId } from './threading.js';

export { FETCH_GROUP_BYTES, META_CHUNK, SEGMENT_BYTES, SEGMENT_MESSAGES } from './sizing.js';
/** Segments a stage may get ahead of the next one (one download in flight while storing). */
export const PIPELINE_DEPTH = 1;
/** The IMAP work of a run ends this long before its deadline (the connection is closed then,
 *  whatever is in flight): time to store what was downloaded, write the status and answer. */
export const STOP_RESERVE_MS = 3_000;
/** Integrations looked at per run; the rest wait for the next run (oldest first). */
export const MAX_INTEGRATIONS_PER_RUN = 1_000;
/** A claimed integration's lease outlives the run by this much (a crashed run's lease expires). */
export const INTEGRATION_LEASE_EXTRA_SEC = 120;
export const DEFAULT_IMAP_PORT = 993;
export const PAUSED = 'paused';

export type IntegrationRow = {
  id: number; company_id: number; name: string; imap_server: string | null; imap_port: number | null;
  email_address: string | null; email_password: string | null; use_ssl: boolean; imap_folder: string;
  uid_validity: number | string | null; last_uid: number | string | null; highest_modseq: string | null;
  consecutive_failures: number; last_sync_at: Date | null; sync_bytes_per_sec: number | null;
  /** `password` or `oauth2` (docs/oauth-mailboxes.md). */
  auth_method: string;
};

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

export type IntegrationOutcome = {
  integrationId: number;
  status: 'success' | 'partial' | 'error' | 'auth_error' | 'paused' | 'needs_reauth';
  plan?: SyncPlan['kind'];
  toFetch?: number;
  seg: SegmentResult;
  legacyPlaintext: boolean;
  error?: ItemError;
};

const emptySeg = (): SegmentResult => ({ imported: 0, duplicates: 0, poison: 0, clientsCreated: 0, conversationsCreated: 0, clientsNotCreated: {}, bytes: 0 });
function addSeg(a: SegmentResult, b: SegmentResult) {
  a.imported += b.imported; a.duplicates += b.duplicates; a.poison += b.poison; a.bytes += b.bytes;
  a.clientsCreated += b.clientsCreated; a.conversationsCreated += b.conversationsCreated;
  for (const [k, v] of Object.entries(b.clientsNotCreated)) a.clientsNotCreated[k] = (a.clientsNotCreated[k] ?? 0) + v;
}

const toNum = (v: number | string | null) => (v === null ? null : Number(v));
/** Raw statements return timestamps as strings on some drivers: one shape for the rest of the code. */
const asRow = (r: IntegrationRow): IntegrationRow => ({ ...r, last_sync_at: r.last_sync_at === null ? null : new Date(r.last_sync_at as unknown as string) });

async function blockedDomainsOf(db: Db, companyId: number): Promise<string[]> {
  const rows = await queryRows<{ settings: unknown }>(db, sql`select settings from company_settings where company_id = ${companyId}`);
  return parseCompanySettings(rows[0]?.settings).settings.clients.blocked_client_domains;
}

/**
 * Stores a segment; if the transaction fails, retries message by message so that one bad
 * message is recorded as poison instead of blocking the others (SPEC §5.1.8). A transient
 * database failure (connection, deadlock) is never blamed on a message: it fails the mailbox's
 * run with the cursor before the segment, and the next run stores the messages.
 */
async function storeWithIsolation(db: Db, base: Omit<Parameters<typeof storeSegment>[1], 'messages' | 'poison' | 'cursor'>, messages: ParsedMessage[], poison: { uid: number; error: string }[], cursor: { uidValidity: number; lastUid: number }) {
  try {
    return await storeSegment(db, { ...base, messages, poison, cursor });
  } catch (segmentErr) {
    if (isTransientDbError(segmentErr)) throw segmentErr;
    if (messages.length <= 1 && !poison.length) {
      return storeSegment(db, { ...base, messages: [], poison: messages.map((m) => ({ uid: m.uid, error: `store failed: ${(segmentErr as Error).message}` })), cursor });
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
          addSeg(total, await storeSegment(db, { ...base, messages: [], poison: [{ uid: item.uid, error: `store failed: ${String((err as Error).message).slice(0, 300)}` }], cursor: step }));
        }
      }
    }
    addSeg(total, await storeSegment(db, { ...base, messages: [], poison: [], cursor }));
    return total;
  }
}

type DownloadedSegment = {
  /** Every planned UID of the segment, in order (known duplicates and expunged ones included). */
  uids: number[];
  lastUid: number;
  toDownload: MessageMeta[];
  sources: Map<number, Buffer>;
  headers: Map<number, Buffer>;
  /** Messages skipped without download: their Message-ID is already stored. */
  knownDuplicates: number;
  /** The size rule its messages were downloaded under (the link's speed is re-measured as the run goes). */
  rule: SizeRule;
};

/** What a run learns about the mailbox's link, filled in as it goes (a failed run reports it too). */
export type LinkProgress = {
  /** Bytes received and time spent downloading (sizes, Message-IDs, sources), waits on the consumer excluded. */
  bytes: number;
  ms: number;
  /** The cursor moved (messages stored, or known ones passed). */
  advanced: boolean;
};

/** Message size limits of one run: the configured one, and (once measured) what the link can deliver. */
type SizeRule = { maxMessage: number; linkMax: number | null; bytesPerSec: number | null };
const bodyLimit = (r: SizeRule) => (r.linkMax === null ? r.maxMessage : Math.min(r.maxMessage, r.linkMax));

/**
 * The IMAP stage: sizes and Message-IDs of the planned UIDs (one FETCH per `metaChunk`),
 * then the segments in UID order, each with its sources downloaded. The sources of several
 * segments come from one FETCH (up to `limits.fetchGroupBytes`): each segment is handed out as
 * soon as its last message has arrived, while the rest keeps streaming. Stops before the next
 * FETCH once `stop()` says so; when the run's deadline closes the connection, the segment in
 * flight is dropped and the stage simply ends (what was handed out is stored).
 */
async function* downloadSegments(
  ctx: JobContext, client: ImapFlow, companyId: number, planned: readonly number[], sizing: { maxMessage: number; storedRate: number | null },
  stop: () => boolean, deadline: ImapDeadline, link: LinkProgress,
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
      const known = headerIds.length
        ? new Set((await queryRows<{ external_id: string }>(ctx.db, sql`
            select external_id from inbox_messages where company_id = ${companyId} and external_id = any(${sql.param(headerIds)}::text[])`)).map((r) => r.external_id))
        : new Set<string>();
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
            if (m.size > bodyLimit(rule)) { const h = headers.get(m.uid); if (h) s.headers.set(m.uid, h); continue; }
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

/** Cuts a chunk of UIDs into segments: consecutive UIDs, bounded in downloads and in bytes. */
function planSegments(chunk: readonly number[], metaByUid: Map<number, MessageMeta>, known: Set<string>, rule: SizeRule, limits: SyncLimits): { segment: DownloadedSegment; bytes: number }[] {
  const maxBody = bodyLimit(rule);
  const out: { segment: DownloadedSegment; bytes: number }[] = [];
  let i = 0;
  while (i < chunk.length) {
    const uids: number[] = [];
    let bytes = 0;
    let downloads = 0;
    while (i < chunk.length && downloads < limits.segmentMessages) {
      const meta = metaByUid.get(chunk[i]);
      const id = normaliseMessageId(meta?.messageId);
      const needsBody = !!meta && !(id && known.has(id));
      const size = meta && meta.size <= maxBody ? meta.size : 0;
      if (needsBody && downloads > 0 && bytes + size > limits.segmentBytes) break;
      uids.push(chunk[i]);
      if (needsBody) { downloads++; bytes += size; }
      i++;
    }
    const metas = uids.map((u) => metaByUid.get(u)).filter((m): m is MessageMeta => !!m);
    const toDownload = metas.filter((m) => { const id = normaliseMessageId(m.messageId); return !(id && known.has(id)); });
    out.push({ segment: { uids, lastUid: uids[uids.length - 1], toDownload, sources: new Map(), headers: new Map(), knownDuplicates: metas.length - toDownload.length, rule }, bytes });
  }
  return out;
}

/**
 * What the parser gets for a segment: full sources, or header blocks for the ones over the size
 * limit. A message under MAX_MESSAGE_BYTES but beyond what the link delivers in a run is parsed as
 * an oversize one (same dedupe key whatever the link's speed) and gets its own note afterwards.
 */
function segmentParseItems(d: DownloadedSegment): { items: ParseItem[]; linkSkipped: Set<number> } {
  const rule = d.rule;
  const items: ParseItem[] = [];
  const linkSkipped = new Set<number>();
  for (const meta of d.toDownload) {
    const over = meta.size > bodyLimit(rule);
    const source = over ? d.headers.get(meta.uid) : d.sources.get(meta.uid);
    if (!source) continue; // expunged between the two FETCHes: nothing left to import
    if (over && meta.size <= rule.maxMessage) linkSkipped.add(meta.uid);
    items.push({ uid: meta.uid, source, oversize: over ? { bytes: meta.size, maxBytes: rule.maxMessage } : undefined });
  }
  return { items, linkSkipped };
}

type SessionResult = { folder: FolderState; plan: SyncPlan; planned: number[]; processed: number; stopped: boolean; seg: SegmentResult };

/** Runs one IMAP command of the session; once the deadline closed the connection, says so instead. */
async function imapStep<T>(client: ImapFlow, deadline: ImapDeadline, phase: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw deadline.expired ? deadline.error(phase) : classifyImapError(underlyingError(client, err));
  }
}

/**
 * One mailbox: connect and log in, EXAMINE, plan, then segments in UID order, each stored with its
 * cursor. All the IMAP work ends at `STOP_RESERVE_MS` before the run's deadline: the connection is
 * closed then, the segments already downloaded are stored, the rest waits for the next run. In a
 * dry run, only counts what would be fetched.
 */
async function syncMailbox(ctx: JobContext, row: IntegrationRow, credentials: { pass: string } | { accessToken: string }, opts: InboxSyncOptions, dryRun: boolean, seg: SegmentResult, link: LinkProgress): Promise<SessionResult> {
  const sessionOpts: ImapSessionOptions = {
    connectTimeoutMs: ctx.config.IMAP_CONNECT_TIMEOUT_MS,
    greetingTimeoutMs: ctx.config.IMAP_GREETING_TIMEOUT_MS,
    socketTimeoutMs: ctx.config.IMAP_SOCKET_TIMEOUT_MS,
    tls: opts.tls,
    onCommand: opts.onCommand ? (verb) => opts.onCommand!(row.id, verb) : undefined,
    onWarn: (msg) => ctx.log.debug({ integrationId: row.id, msg }, 'imap warning'),
  };
  const deadline = new ImapDeadline(ctx.deadline - STOP_RESERVE_MS);
  const client = await connectAndLogin({
    host: row.imap_server!, port: row.imap_port ?? DEFAULT_IMAP_PORT, useSsl: row.use_ssl, user: row.email_address!, ...credentials,
  }, sessionOpts, deadline);
  let streaming = false;
  try {
    const folderName = row.imap_folder || 'INBOX';
    const cursor: Cursor = { uidValidity: toNum(row.uid_validity), lastUid: toNum(row.last_uid), highestModseq: row.highest_modseq, lastSyncAt: row.last_sync_at };
    const status = await imapStep(client, deadline, 'STATUS', () => folderStatus(client, folderName));
    if (planSync(cursor, status, ctx.now).kind === 'up-to-date') return { folder: status, plan: { kind: 'up-to-date' }, planned: [], processed: 0, stopped: false, seg };
    // there is work: select the folder read-only and plan again on what EXAMINE says
    const folder = await imapStep(client, deadline, 'EXAMINE', () => examineFolder(client, folderName));
    const plan = planSync(cursor, folder, ctx.now);
    let planned: number[] = [];
    if (plan.kind === 'uid-range') planned = uidsToProcess(await imapStep(client, deadline, 'SEARCH', () => searchUidsFrom(client, plan.fromUid)), plan.fromUid);
    else if (plan.kind === 'since') planned = uidsToProcess(await imapStep(client, deadline, 'SEARCH', () => searchUidsSince(client, plan.since)), 1);
    if (dryRun) return { folder, plan, planned, processed: 0, stopped: false, seg };

    const hookStop = () => opts.hooks?.shouldStop?.() ?? false;
    const base = { companyId: row.company_id, integrationId: row.id, blockedDomains: await blockedDomainsOf(ctx.db, row.company_id), now: ctx.now };
    const maxAttachment = ctx.config.MAX_ATTACHMENT_BYTES;
    let processed = 0;
    let stopped = false;
    // Three stages overlap, each one segment apart: IMAP downloads segment k+2 while segment k+1
    // is parsed and segment k is stored. Order is kept (segments are stored, and the cursor moves,
    // strictly in UID order).
    const downloaded = readAhead(downloadSegments(ctx, client, row.company_id, planned, { maxMessage: ctx.config.MAX_MESSAGE_BYTES, storedRate: row.sync_bytes_per_sec }, () => {
      if (hookStop() || deadline.expired) stopped = true;
      return stopped;
    }, deadline, link), PIPELINE_DEPTH);
    const parsed = readAhead(mapSerial(downloaded, async (d) => {
      const { items, linkSkipped } = segmentParseItems(d);
      const r = await parseItems(items, { maxAttachmentBytes: maxAttachment });
      for (const m of r.messages) if (linkSkipped.has(m.uid)) m.text = linkTooSlowNote(m.bytes, d.rule.bytesPerSec ?? 1);
      d.sources.clear();
      d.headers.clear();
      return { ...d, ...r };
    }), PIPELINE_DEPTH);
    streaming = true;
    let cutShort = false;
    // Leaving early (hook, budget spent, error), the download under way is abandoned, not awaited:
    // the connection is closed first, so unwinding the pipeline does not wait for a FETCH to finish
    // (LOGOUT would also download the rest; the folder is read-only, closing loses nothing).
    // Segments downloaded before the IMAP deadline are still stored, but none starts past the budget.
    try {
      for await (const p of parsed) {
        if (hookStop() || budgetSpent(ctx)) { stopped = true; cutShort = true; client.close(); break; }
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
    if (deadline.expired && processed < planned.length) { stopped = true; cutShort = true; }
    if (!cutShort) streaming = false; // every FETCH ran to its end
    return { folder, plan, planned, processed, stopped, seg };
  } finally {
    try {
      if (streaming) client.close(); // see above: never LOGOUT behind an abandoned FETCH
      else await closeSession(client); // LOGOUT too is bounded by the deadline
    } finally {
      deadline.disarm();
    }
  }
}

/** The link columns written with every outcome: measured throughput and the last progress. */
const linkColumns = (row: IntegrationRow, link: LinkProgress) => sql`
  sync_bytes_per_sec = ${nextThroughput(row.sync_bytes_per_sec, link.bytes, link.ms)},
  last_progress_at = ${link.advanced ? sql`now()` : sql`last_progress_at`}`;

async function recordSuccess(db: Db, row: IntegrationRow, s: SessionResult, now: Date, link: LinkProgress) {
  const prev: Cursor = { uidValidity: toNum(row.uid_validity), lastUid: toNum(row.last_uid), highestModseq: row.highest_modseq, lastSyncAt: row.last_sync_at };
  // segments already stored their cursor steps; this adds the end-of-run position
  const stored = await queryRows<{ uid_validity: string | null; last_uid: string | null }>(db, sql`select uid_validity, last_uid from inbox_integrations where id = ${row.id}`);
  const current: Cursor = { ...prev, uidValidity: toNum(stored[0]?.uid_validity ?? null), lastUid: toNum(stored[0]?.last_uid ?? null) };
  const next = cursorAfter(s.folder, s.planned, s.processed, current.uidValidity === s.folder.uidValidity ? current : { ...prev, uidValidity: null, lastUid: null });
  const partial = s.stopped;
  // a finished run that moved the cursor (e.g. past expunged UIDs) advanced too; a cut one before its first message did not
  const moved = !partial && (next.lastUid ?? 0) > (current.lastUid ?? 0);
  await db.execute(sql`
    update inbox_integrations set
      uid_validity = ${next.uidValidity}, last_uid = ${next.lastUid}, highest_modseq = ${next.highestModseq},
      last_sync_status = ${partial ? 'partial' : 'success'}, last_sync_error = null, consecutive_failures = 0,
      last_sync_at = ${partial ? sql`last_sync_at` : sql`${now}`}, next_sync_at = null,
      ${linkColumns(row, { ...link, advanced: link.advanced || moved })},
      sync_lease_until = null, updated_at = now()
    where id = ${row.id}`);
}

/**
 * The run's deadline came before the folder was even planned (a slow connect, login or SEARCH):
 * not the mailbox's fault, so no failure is counted; `partial`, and the next run tries again.
 */
async function recordDeadline(db: Db, row: IntegrationRow, link: LinkProgress) {
  await db.execute(sql`
    update inbox_integrations set last_sync_status = 'partial', ${linkColumns(row, link)}, sync_lease_until = null, updated_at = now()
    where id = ${row.id}`);
}

function frenchError(e: ImapSyncError | FernetError | Error, host: string): string {
  if (e instanceof FernetError) return `Mot de passe enregistré illisible (clé de chiffrement ?) : ${e.message}`;
  if (e instanceof OAuthError) return e.message; // already French, without any token
  if (!(e instanceof ImapSyncError)) return `Erreur de synchronisation : ${e.message}`;
  return frenchImapError(e, host);
}

/** Failure: status, counters, back-off, release — one statement. Returns the new status. */
async function recordFailure(ctx: JobContext, row: IntegrationRow, err: Error, link: LinkProgress): Promise<'error' | 'auth_error' | 'paused'> {
  const auth = err instanceof ImapSyncError && err.code === 'auth_failed';
  const failures = row.consecutive_failures + 1;
  const status = auth ? (failures >= AUTH_FAILURES_BEFORE_PAUSE ? PAUSED : 'auth_error') : 'error';
  const message = frenchError(err, row.imap_server ?? '?').slice(0, 500);
  await ctx.db.transaction(async (tx) => {
    await tx.execute(sql`
      update inbox_integrations set
        last_sync_status = ${status}, last_sync_error = ${message}, consecutive_failures = ${failures},
        next_sync_at = ${nextSyncAfterFailure(failures, ctx.now)}, ${linkColumns(row, link)}, sync_lease_until = null, updated_at = now()
      where id = ${row.id}`);
    if (status === PAUSED) {
      // one notification per pause episode: the episode is named by the last successful sync
      const episode = `auth-paused:${row.last_sync_at ? row.last_sync_at.toISOString() : 'never'}`;
      const link = new URL('/inbox?settings=integrations', ctx.config.FRONTEND_URL).toString();
      await tx.execute(sql`
        insert into notifications (company_id, user_id, type, title, message, link_url, link_text, source_type, source_id, dedupe_key)
        values (${row.company_id}, null, 'INBOX_INTEGRATION_PAUSED', ${'Synchronisation de la boîte mail suspendue'},
          ${`La boîte « ${row.name} » (${row.email_address ?? '?'}) a refusé la connexion ${failures} fois de suite. La synchronisation est suspendue : mettez à jour le mot de passe (ou le mot de passe d'application) dans les réglages de la boîte de réception.`},
          ${link}, ${'Mettre à jour la boîte mail'}, 'inbox_integration', ${row.id}, ${episode})
        on conflict do nothing`);
    }
  });
  return status;
}

async function releaseLease(db: Db, id: number) {
  await db.execute(sql`update inbox_integrations set sync_lease_until = null where id = ${id}`);
}

const ELIGIBLE = (now: Date) => sql`
  i.integration_type = 'imap' and i.is_active and i.last_sync_status is distinct from ${PAUSED}
  and i.last_sync_status is distinct from ${NEEDS_REAUTH}
  and (i.next_sync_at is null or i.next_sync_at <= ${now})
  and (i.sync_lease_until is null or i.sync_lease_until < now())`;

const COLUMNS = sql`i.id, i.company_id, i.name, i.imap_server, i.imap_port, i.email_address, i.email_password, i.use_ssl,
  i.imap_folder, i.uid_validity, i.last_uid, i.highest_modseq, i.consecutive_failures, i.last_sync_at, i.sync_bytes_per_sec, i.auth_method`;

/** Claims one integration for this run: the lease is the claim (SPEC §2.5), re-checked atomically. */
async function claim(ctx: JobContext, id: number, runStartedAt: Date): Promise<IntegrationRow | null> {
  const leaseSec = Math.max(60, Math.ceil((ctx.deadline - Date.now()) / 1000)) + INTEGRATION_LEASE_EXTRA_SEC;
  const rows = await queryRows<IntegrationRow>(ctx.db, sql`
    update inbox_integrations i set sync_lease_until = now() + make_interval(secs => ${leaseSec})
    where i.id = ${id} and ${ELIGIBLE(ctx.now)}
      -- synced by an overlapping run since this one started: nothing to gain from a second pass
      and i.updated_at < ${runStartedAt}
    returning ${COLUMNS}`);
  return rows[0] ? asRow(rows[0]) : null;
}

async function syncOne(ctx: JobContext, row: IntegrationRow, opts: InboxSyncOptions): Promise<IntegrationOutcome> {
  const out: IntegrationOutcome = { integrationId: row.id, status: 'success', seg: emptySeg(), legacyPlaintext: false };
  const link: LinkProgress = { bytes: 0, ms: 0, advanced: false };
  const fail = async (err: Error, code: string) => {
    out.status = ctx.dryRun ? 'error' : await recordFailure(ctx, row, err, link);
    out.error = { scope: 'inbox_integration', id: row.id, code: out.status === PAUSED ? 'paused' : code, message: frenchError(err, row.imap_server ?? '?') };
    ctx.log.warn({ integrationId: row.id, companyId: row.company_id, mailbox: maskEmail(row.email_address ?? ''), code, status: out.status }, 'integration sync failed');
    return out;
  };
  if (row.auth_method === 'oauth2') return syncOAuthMailbox(ctx, row, opts, out, fail, link);
  if (!row.imap_server || !row.email_address || !row.email_password) {
    return fail(new Error('configuration incomplète (serveur, adresse ou mot de passe manquant)'), 'config_incomplete');
  }
  let password: string;
  try {
    const secret = decryptStoredSecret(row.email_password, ctx.config.ENCRYPTION_MASTER_KEY);
    out.legacyPlaintext = secret.legacyPlaintext;
    password = passwordForHost(secret.value, row.imap_server);
  } catch (err) {
    return fail(err as Error, 'credentials_undecryptable');
  }
  let s: SessionResult;
  try {
    // segments add to out.seg as they commit, so a failure still reports what was stored
    s = await syncMailbox(ctx, row, { pass: password }, opts, ctx.dryRun, out.seg, link);
  } catch (err) {
    const e = err instanceof ImapSyncError ? err : classifyImapError(err);
    if (e.code === 'deadline') return cutByDeadline(ctx, row, e, out, link);
    // segments stored before the failure keep their cursor: the next run resumes after them
    return fail(e, e.code);
  }
  return finishSync(ctx, row, s, out, link);
}

/** The budget ran out before the folder was planned: partial, not a failure of the mailbox. */
async function cutByDeadline(ctx: JobContext, row: IntegrationRow, e: ImapSyncError, out: IntegrationOutcome, link: LinkProgress): Promise<IntegrationOutcome> {
  out.status = 'partial';
  if (!ctx.dryRun) await recordDeadline(ctx.db, row, link);
  ctx.log.info({ integrationId: row.id, companyId: row.company_id, reason: e.message }, 'integration sync cut by the deadline');
  return out;
}

/**
 * An OAuth mailbox (docs/oauth-mailboxes.md): a valid access token (refreshed under the row lock
 * when expiring), XOAUTH2 login; a refused login is retried once with a new token, then the grant
 * is `needs_reauth` (notified once, never selected again until the web app stores a new grant).
 */
async function syncOAuthMailbox(ctx: JobContext, row: IntegrationRow, opts: InboxSyncOptions, out: IntegrationOutcome, fail: (err: Error, code: string) => Promise<IntegrationOutcome>, link: LinkProgress): Promise<IntegrationOutcome> {
  if (!row.imap_server || !row.email_address) return fail(new Error('configuration incomplète (serveur ou adresse manquant)'), 'config_incomplete');
  let s: SessionResult;
  try {
    s = await withAccessToken({ db: ctx.db, config: ctx.config, log: ctx.log, ...opts.oauth }, row.id,
      (t) => syncMailbox(ctx, row, { accessToken: t.accessToken }, opts, ctx.dryRun, out.seg, link),
      (err) => err instanceof ImapSyncError && err.code === 'auth_failed',
      { noRefresh: ctx.dryRun });
  } catch (err) {
    if (err instanceof OAuthError && err.code === 'oauth_needs_reauth') {
      if (!ctx.dryRun) await releaseLease(ctx.db, row.id);
      out.status = 'needs_reauth';
      out.error = { scope: 'inbox_integration', id: row.id, code: err.code, message: err.message };
      ctx.log.warn({ integrationId: row.id, companyId: row.company_id, mailbox: maskEmail(row.email_address), code: err.code }, 'integration needs reauthorization');
      return out;
    }
    if (err instanceof OAuthError) return fail(err, err.code); // transient or configuration: normal back-off
    const e = err instanceof ImapSyncError ? err : classifyImapError(err);
    if (e.code === 'deadline') return cutByDeadline(ctx, row, e, out, link);
    return fail(e, e.code);
  }
  return finishSync(ctx, row, s, out, link);
}

async function finishSync(ctx: JobContext, row: IntegrationRow, s: SessionResult, out: IntegrationOutcome, link: LinkProgress): Promise<IntegrationOutcome> {
  out.plan = s.plan.kind;
  out.toFetch = s.planned.length;
  if (ctx.dryRun) return out;
  await recordSuccess(ctx.db, row, s, ctx.now, link);
  out.status = s.stopped ? 'partial' : 'success';
  ctx.log.info({ integrationId: row.id, companyId: row.company_id, plan: s.plan.kind, planned: s.planned.length, processed: s.processed, imported: s.seg.imported, duplicates: s.seg.duplicates, poison: s.seg.poison, partial: s.stopped, linkBytes: link.bytes, linkMs: link.ms }, 'integration synced');
  return out;
}

export async function runInboxSync(ctx: JobContext, opts: InboxSyncOptions = {}): Promise<JobResult> {
  // the database's clock, compared with updated_at (written by now()): no skew with the function's
  const [{ ms }] = await queryRows<{ ms: string }>(ctx.db, sql`select (extract(epoch from now()) * 1000)::bigint::text as ms`);
  const runStartedAt = new Date(Number(ms));
  const candidates = await queryRows<IntegrationRow>(ctx.db, sql`
    select ${COLUMNS} from inbox_integrations i join companies co on co.id = i.company_id
    where ${ELIGIBLE(ctx.now)} and co.is_active and ${scopeFilter(sql`i.company_id`, { companyId: ctx.scope.companyId })}
      -- shards split mailboxes, not companies: a big tenant spreads over every shard (docs/scale.md)
      and ${ctx.scope.shard ? sql`mod(i.id, ${ctx.scope.shard.n}) = ${ctx.scope.shard.k}` : sql`true`}
    -- the stalest mailbox first, whatever its company: nobody starves behind a big tenant
    order by i.last_sync_at nulls first, i.id
    limit ${MAX_INTEGRATIONS_PER_RUN}`).then((rows) => rows.map(asRow));
  const limit = pLimit(ctx.config.SYNC_CONCURRENCY);
  // the host's slot first, then a run slot: a mailbox waiting for a busy host holds no run slot
  const hostLimit = createHostLimiter(ctx.config.IMAP_HOST_MAX_CONNECTIONS);
  let notStarted = 0;
  let claimedElsewhere = 0;
  let finished = 0;
  let importedSoFar = 0;
  const reportProgress = (o: IntegrationOutcome | null) => {
    finished++;
    importedSoFar += o?.seg.imported ?? 0;
    ctx.progress?.(`${finished}/${candidates.length} mailboxes, ${importedSoFar} messages`);
    return o;
  };
  const outcomes = await Promise.all(candidates.map((cand) => hostLimit(cand.imap_server ?? '', () => limit(async (): Promise<IntegrationOutcome | null> => {
    if (budgetSpent(ctx, STOP_RESERVE_MS)) { notStarted++; return null; }
    const row = ctx.dryRun ? cand : await claim(ctx, cand.id, runStartedAt);
    if (!row) { claimedElsewhere++; return null; }
    try {
      return reportProgress(await syncOne(ctx, row, opts));
    } catch (err) {
      // a database error while storing: the integration is released and reported, the run goes on
      if (!ctx.dryRun) await releaseLease(ctx.db, row.id).catch(() => {});
      const e = err as Error;
      ctx.log.error({ integrationId: row.id, err: { message: e.message } }, 'integration sync crashed');
      return { integrationId: row.id, status: 'error', seg: emptySeg(), legacyPlaintext: false, error: { scope: 'inbox_integration', id: row.id, code: 'store_failed', message: e.message.slice(0, 300) } };
    }
  }))));
  const done = outcomes.filter((o): o is IntegrationOutcome => o !== null);
  // bounces and auto-replies of what was stored, and the platform bounce mailbox (docs/bounces.md)
  const companyOf = new Map(candidates.map((c) => [c.id, c.company_id]));
  const bounces = await afterInboxSync(ctx, done.map((o) => companyOf.get(o.integrationId)!), opts.tls);
  const total = emptySeg();
  for (const o of done) addSeg(total, o.seg);
  const count = (st: IntegrationOutcome['status'][]) => done.filter((o) => st.includes(o.status)).length;
  const stats: Record<string, unknown> = {
    integrations: candidates.length,
    synced: count(['success', 'partial']),
    failed: count(['error', 'auth_error']),
    paused: count(['paused']),
    needsReauth: count(['needs_reauth']),
    skipped: notStarted + claimedElsewhere,
    notStartedBudget: notStarted,
    claimedElsewhere,
    incomplete: count(['partial']) + notStarted,
    messagesImported: total.imported,
    messagesDuplicate: total.duplicates,
    messagesPoison: total.poison,
    bytes: total.bytes,
    clientsCreated: total.clientsCreated,
    conversationsCreated: total.conversationsCreated,
    clientsNotCreated: total.clientsNotCreated,
    legacyPlaintextPasswords: done.filter((o) => o.legacyPlaintext).length,
    ...(bounces ? { bounces } : {}),
  };
  const result: JobResult = {
    stats,
    errors: done.flatMap((o) => (o.error ? [o.error] : [])),
    partial: notStarted > 0 || count(['partial']) > 0,
  };
  if (ctx.dryRun) {
    stats.messagesToFetch = done.reduce((n, o) => n + (o.toFetch ?? 0), 0);
    result.plan = done.map((o) => ({ integrationId: o.integrationId, status: o.status, plan: o.plan ?? null, newMessages: o.toFetch ?? 0, ...(o.error ? { error: o.error.code } : {}) }));
  }
  return result;
}

/** The job, with injectable TLS trust, command counting and hooks (tests and the benchmark). */
export function createInboxSyncJob(opts: InboxSyncOptions = {}): Job {
  return { id: 'inbox-sync', run: (ctx) => runInboxSync(ctx, opts) };
}
