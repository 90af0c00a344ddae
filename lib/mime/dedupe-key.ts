/**
 * The dedupe keys of a message without a Message-ID (docs/inbox-sync.md, dedupe). Pure.
 */
import { createHash } from 'node:crypto';

/**
 * The dedupe key of a message without a Message-ID: `sha256:` + a hash of the message as its
 * sender wrote it — every header except those added or rewritten in transit, and the whole body
 * (every part, every attachment), line endings normalised. Re-delivery of the same message, a copy
 * in another folder and a re-scan give the same key; two messages differing in any byte the sender
 * wrote never do. See docs/inbox-sync.md (dedupe).
 * `oversizeBytes`: only the header block was downloaded (the message was too large); its size
 * stands in for the body.
 */
export function fallbackKey(source: Buffer, opts: { oversizeBytes?: number } = {}): string {
  const { headerEnd, bodyStart } = splitHeaderBlock(source);
  const h = createHash('sha256');
  h.update('lokario-dedupe-v2\u0000');
  for (const { name, value } of unfoldHeaders(source.subarray(0, headerEnd))) {
    if (isTransitHeader(name)) continue;
    h.update(name);
    h.update(':');
    h.update(value);
    h.update('\n');
  }
  h.update('\u0000');
  if (opts.oversizeBytes !== undefined) h.update(`oversize:${opts.oversizeBytes}`);
  else h.update(normaliseBody(source.subarray(bodyStart)));
  return `sha256:${h.digest('hex')}`;
}

/**
 * Headers that servers add or rewrite on the way (trace, authentication results, spam scores,
 * mailbox-store bookkeeping): excluded from the fallback key so the same message delivered twice
 * or copied between folders keeps one key.
 */
const TRANSIT_HEADERS = new Set([
  'received',
  'return-path',
  'delivered-to',
  'envelope-to',
  'original-recipient',
  'authentication-results',
  'received-spf',
  'dkim-signature',
  'domainkey-signature',
  'arc-seal',
  'arc-message-signature',
  'arc-authentication-results',
  'status',
  'content-length',
  'lines',
  'resent-date',
  'resent-from',
  'resent-to',
  'resent-message-id',
  'resent-sender',
  'list-id',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'list-post',
  'list-help',
  'list-archive',
  'list-owner',
  'list-subscribe',
  'precedence',
  'errors-to',
  'sender',
  'mailing-list',
  'feedback-id',
  'bounces-to',
]);
export const isTransitHeader = (name: string) => TRANSIT_HEADERS.has(name) || name.startsWith('x-');

/** Where the header block ends and the body starts (a source without blank line is all headers). */
export function splitHeaderBlock(source: Buffer): { headerEnd: number; bodyStart: number } {
  for (let i = 0; i < source.length; i++) {
    if (source[i] !== 0x0a) continue;
    if (source[i + 1] === 0x0a) return { headerEnd: i + 1, bodyStart: i + 2 };
    if (source[i + 1] === 0x0d && source[i + 2] === 0x0a) return { headerEnd: i + 1, bodyStart: i + 3 };
  }
  return { headerEnd: source.length, bodyStart: source.length };
}

/** Header fields of a block: names lower-cased, values unfolded, runs of white space collapsed (bytes kept as latin1 text). */
export function unfoldHeaders(block: Buffer): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  for (const field of block
    .toString('latin1')
    .replace(/\r?\n(?=[ \t])/g, '')
    .split(/\r?\n/)) {
    const colon = field.indexOf(':');
    if (colon <= 0) continue;
    out.push({
      name: field.slice(0, colon).trim().toLowerCase(),
      value: field
        .slice(colon + 1)
        .replace(/[ \t]+/g, ' ')
        .trim(),
    });
  }
  return out;
}

function normaliseBody(body: Buffer): Buffer {
  // CRLF and LF are the same message (mbox stores, IMAP servers and clients differ); trailing
  // blank lines are added by some relays
  let s = body
    .toString('latin1')
    .replace(/\r\n/g, '\n')
    .replace(/[\s]+$/, '');
  if (s.length) s += '\n';
  return Buffer.from(s, 'latin1');
}

/**
 * The key that versions before the `sha256:` one stored for mail without a Message-ID (sender,
 * raw Date, subject and plain text only: it merged HTML-only mail and mail differing by an
 * attachment). Only computed to recognise rows stored by them; see docs/inbox-sync.md.
 */
export function legacyFallbackKey(parts: {
  fromEmail: string | null;
  dateHeader: string | null;
  subject: string | null;
  body: string;
}): string {
  const h = createHash('sha256');
  for (const p of [
    parts.fromEmail?.toLowerCase() ?? '',
    parts.dateHeader?.trim() ?? '',
    parts.subject ?? '',
    parts.body.replace(/\r\n/g, '\n').trim(),
  ]) {
    h.update(p);
    h.update('\u0000');
  }
  return `hash:${h.digest('hex')}`;
}
