/**
 * How much of a mailbox one run asks for, from how fast that mailbox's server delivered in its
 * previous runs (pure: no I/O). A slow link gets small segments, so every run commits some and the
 * cursor advances instead of one large segment being abandoned at every deadline. docs/inbox-sync.md.
 */

/** A segment (one transaction, one cursor step) holds at most this many messages… */
export const SEGMENT_MESSAGES = 50;
/** …and at most this many bytes of sources (a 25 MB message goes alone). Up to three segments
 *  are in memory at once (downloading, parsing, storing). */
export const SEGMENT_BYTES = 16 * 1024 * 1024;
/** Sources of consecutive segments asked for in one FETCH: fewer round trips; abandoning it at the
 *  deadline loses only the segment not yet complete. */
export const FETCH_GROUP_BYTES = 64 * 1024 * 1024;
/** UIDs whose size and Message-ID are asked for in one FETCH (~100 bytes each in the answer). */
export const META_CHUNK = 1_000;
/** The first chunk of a run over a link never measured: small, so the run measures the link
 *  (~25 KB of answer) before asking for more; one extra round trip on a fast link's first sync. */
export const FIRST_META_CHUNK = 200;
/** The fewest UIDs in one size/Message-ID FETCH, whatever the link (a round trip each). */
export const MIN_META_CHUNK = 20;
/** What one UID costs in that FETCH's answer, with its Message-ID header (measured on Dovecot: ~110). */
export const META_BYTES_PER_UID = 128;
/** A run's IMAP window is cut into at least this many segments: at the deadline, at most about a
 *  quarter of what the run downloaded is thrown away. */
export const SEGMENTS_PER_WINDOW = 4;
/** The smallest segment byte bound: below it the round trips of a segment cost more than its data. */
export const MIN_SEGMENT_BYTES = 4 * 1024;
/** Share of a run's window a single message may take; the rest is the session's own cost
 *  (connect, login, STATUS, SEARCH, sizes). A larger message cannot arrive within a run. */
export const LINK_MESSAGE_SHARE = 0.6;
/** A sample shorter than this, or carrying fewer bytes, says nothing about the link (latency, not bandwidth). */
export const MIN_SAMPLE_MS = 1_000;
export const MIN_SAMPLE_BYTES = 16 * 1024;
/** Weight of the newest sample: a link that became fast (or slow) is followed within two runs. */
export const SAMPLE_WEIGHT = 0.5;

export type SyncLimits = {
  segmentMessages: number;
  segmentBytes: number;
  fetchGroupBytes: number;
  metaChunk: number;
  /** A message larger than this cannot be delivered within a run over this link: headers and a
   *  note, like an oversize one. Null while the link was never measured. */
  linkMaxMessageBytes: number | null;
};

const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

/** The limits of a run whose IMAP work may last `windowMs`, over a link measured at `bytesPerSec`. */
export function syncLimits(bytesPerSec: number | null, windowMs: number): SyncLimits {
  if (!bytesPerSec || bytesPerSec <= 0) {
    return {
      segmentMessages: SEGMENT_MESSAGES,
      segmentBytes: SEGMENT_BYTES,
      fetchGroupBytes: FETCH_GROUP_BYTES,
      metaChunk: META_CHUNK,
      linkMaxMessageBytes: null,
    };
  }
  const deliverable = Math.floor((bytesPerSec * Math.max(0, windowMs)) / 1000);
  const segmentBytes = clamp(Math.floor(deliverable / SEGMENTS_PER_WINDOW), MIN_SEGMENT_BYTES, SEGMENT_BYTES);
  return {
    segmentMessages: SEGMENT_MESSAGES,
    segmentBytes,
    fetchGroupBytes: clamp(deliverable, segmentBytes, FETCH_GROUP_BYTES),
    metaChunk: clamp(Math.floor(deliverable / SEGMENTS_PER_WINDOW / META_BYTES_PER_UID), MIN_META_CHUNK, META_CHUNK),
    linkMaxMessageBytes: Math.max(MIN_SEGMENT_BYTES, Math.floor(deliverable * LINK_MESSAGE_SHARE)),
  };
}

/**
 * The throughput to store after a run that received `bytes` in `ms` of download time (bytes/s,
 * rounded), or the previous value when the sample is too small to mean anything.
 */
export function nextThroughput(previous: number | null, bytes: number, ms: number): number | null {
  if (ms < MIN_SAMPLE_MS || bytes < MIN_SAMPLE_BYTES) return previous;
  const sample = (bytes * 1000) / ms;
  const blended = previous && previous > 0 ? previous * (1 - SAMPLE_WEIGHT) + sample * SAMPLE_WEIGHT : sample;
  return Math.max(1, Math.round(blended));
}

/** The French note stored instead of a message the link cannot deliver within a run. */
export function linkTooSlowNote(bytes: number, bytesPerSec: number): string {
  const size = bytes >= 1024 * 1024 ? `${(bytes / (1024 * 1024)).toFixed(1).replace('.', ',')} Mo` : `${Math.ceil(bytes / 1024)} Ko`;
  const rate = `${Math.max(1, Math.round(bytesPerSec / 1024))} Ko/s`;
  return `[Message de ${size} non importé : la liaison avec le serveur de messagerie (environ ${rate}) ne permet pas de le télécharger pendant une synchronisation. Consultez-le dans votre messagerie.]`;
}
