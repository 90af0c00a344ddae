/**
 * inbox-sync's pure decisions inside a session: how a chunk of UIDs is cut into segments (bounded
 * in downloads and bytes, known Message-IDs never downloaded), what the parser gets for a
 * segment, and how segment results add up. The sync plan itself (which UIDs) is cursor.ts.
 */
import type { MessageMeta } from '../../imap/commands.js';
import type { SyncLimits } from '../../imap/sizing.js';
import type { ParseItem } from '../../mime/parse.js';
import type { SegmentResult } from './store.js';
import { normaliseMessageId } from '../../mail/message-id.js';

export const emptySeg = (): SegmentResult => ({
  imported: 0,
  duplicates: 0,
  poison: 0,
  clientsCreated: 0,
  conversationsCreated: 0,
  clientsNotCreated: {},
  bytes: 0,
});
export function addSeg(a: SegmentResult, b: SegmentResult) {
  a.imported += b.imported;
  a.duplicates += b.duplicates;
  a.poison += b.poison;
  a.bytes += b.bytes;
  a.clientsCreated += b.clientsCreated;
  a.conversationsCreated += b.conversationsCreated;
  for (const [k, v] of Object.entries(b.clientsNotCreated)) a.clientsNotCreated[k] = (a.clientsNotCreated[k] ?? 0) + v;
}

export type DownloadedSegment = {
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

/** Message size limits of one run: the configured one, and (once measured) what the link can deliver. */
export type SizeRule = { maxMessage: number; linkMax: number | null; bytesPerSec: number | null };
export const bodyLimit = (r: SizeRule) => (r.linkMax === null ? r.maxMessage : Math.min(r.maxMessage, r.linkMax));

/** Cuts a chunk of UIDs into segments: consecutive UIDs, bounded in downloads and in bytes. */
export function planSegments(
  chunk: readonly number[],
  metaByUid: Map<number, MessageMeta>,
  known: Set<string>,
  rule: SizeRule,
  limits: SyncLimits,
): { segment: DownloadedSegment; bytes: number }[] {
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
      if (needsBody) {
        downloads++;
        bytes += size;
      }
      i++;
    }
    const metas = uids.map((u) => metaByUid.get(u)).filter((m): m is MessageMeta => !!m);
    const toDownload = metas.filter((m) => {
      const id = normaliseMessageId(m.messageId);
      return !(id && known.has(id));
    });
    out.push({
      segment: {
        uids,
        lastUid: uids[uids.length - 1],
        toDownload,
        sources: new Map(),
        headers: new Map(),
        knownDuplicates: metas.length - toDownload.length,
        rule,
      },
      bytes,
    });
  }
  return out;
}

/**
 * What the parser gets for a segment: full sources, or header blocks for the ones over the size
 * limit. A message under MAX_MESSAGE_BYTES but beyond what the link delivers in a run is parsed as
 * an oversize one (same dedupe key whatever the link's speed) and gets its own note afterwards.
 */
export function segmentParseItems(d: DownloadedSegment): { items: ParseItem[]; linkSkipped: Set<number> } {
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
