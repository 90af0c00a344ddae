/**
 * MIME parsing with mailparser's simpleParser (charsets through iconv-lite, RFC 2047/2231,
 * broken boundaries tolerated), after decode.ts repaired what it would garble (8-bit headers,
 * UTF-7). Chosen over postal-mime: see docs/inbox-sync.md.
 */
import type { ParsedMail, AddressObject } from 'mailparser';
import { convert as htmlToText } from 'html-to-text';
import { repairSource } from './decode.js';
import { reportFacts, type ReportFacts } from './report.js';
import { classifyMessage, type MessageKind } from './kinds.js';
import { fallbackKey, legacyFallbackKey } from './dedupe-key.js';
import { sanitiseFilename, fileTypeOf, storableDate, storableText } from './storable.js';
import { normaliseMessageId, parseIdList } from '../mail/message-id.js';

export type ParsedAttachment = {
  name: string;
  mimeType: string | null;
  fileType: 'image' | 'pdf' | 'document' | 'other';
  size: number;
  content: Buffer | null;
  skippedReason: string | null;
};

export type ParsedMessage = {
  uid: number;
  /** The dedupe key: normalised Message-ID, or `sha256:` + a hash of the whole message when there is none. */
  externalId: string;
  /** Without a Message-ID: the key older versions stored for the same message (`hash:…`), to recognise their rows. */
  legacyKey: string | null;
  kind: MessageKind;
  messageId: string | null;
  fromEmail: string | null;
  fromName: string;
  to: string;
  subject: string;
  text: string;
  inReplyTo: string | null;
  references: string[];
  sentAt: Date | null;
  headers: {
    autoSubmitted: string | null;
    listId: string | null;
    listUnsubscribe: string | null;
    precedence: string | null;
    xAutoreply: string | null;
    xAutorespond: string | null;
  };
  attachments: ParsedAttachment[];
  /** The message was over MAX_MESSAGE_BYTES: headers only, with a note as its content. */
  oversize: boolean;
  bytes: number;
  /** A bounce's or an auto-reply's facts, kept in external_metadata (lib/mime/report.ts). */
  reports?: ReportFacts;
  /** What could not be read and was dropped (a part, its HTML, its report), kept in external_metadata. */
  notes: string[];
};

export type ParseLimits = { maxAttachmentBytes: number };

/** Stored message text is bounded: a 20 MB text/plain body is a log dump, not a conversation. */
export const MAX_CONTENT_CHARS = 1_000_000;

function rawHeader(p: ParsedMail, key: string): string | null {
  const line = p.headerLines.find((h) => h.key === key)?.line;
  if (!line) return null;
  const i = line.indexOf(':');
  return (
    line
      .slice(i + 1)
      .replace(/\r?\n[ \t]+/g, ' ')
      .trim() || null
  );
}

function firstAddress(a: AddressObject | AddressObject[] | undefined): { address: string | null; name: string } {
  const list = (Array.isArray(a) ? a : a ? [a] : []).flatMap((x) => x.value);
  const flat = list.flatMap((v) => (v.group ? v.group : [v]));
  const v = flat.find((x) => x.address) ?? flat[0];
  const address = v?.address ? v.address.trim().toLowerCase() : null;
  return { address: address && /^[^\s@]+@[^\s@]+$/.test(address) ? address : null, name: (v?.name ?? '').trim() };
}

const mb = (n: number) => (n / (1024 * 1024)).toFixed(1).replace('.', ',');

export function oversizeNote(bytes: number, maxBytes: number): string {
  return `[Message de ${mb(bytes)} Mo non importé : il dépasse la taille maximale de ${mb(maxBytes)} Mo. Consultez-le dans votre messagerie.]`;
}

/** HTML bodies larger than this are cut before conversion (html-to-text's cost grows with it). */
const MAX_HTML_CHARS = 4_000_000;

/**
 * Readable text of an HTML body: paragraphs and lists kept, links as `text [url]` (the URL only
 * once when it is the text), no images, no `<style>`/`<script>`/`<head>` content.
 */
export function htmlToReadableText(html: string): string {
  return htmlToText(html, {
    wordwrap: false,
    limits: { maxInputLength: MAX_HTML_CHARS, maxDepth: 200 },
    selectors: [
      { selector: 'a', options: { hideLinkHrefIfSameAsText: true, ignoreHref: false, linkBrackets: ['[', ']'] } },
      { selector: 'img', format: 'skip' },
      { selector: 'td', format: 'block' },
      { selector: 'th', format: 'block' },
      { selector: 'h1', options: { uppercase: false } },
      { selector: 'h2', options: { uppercase: false } },
      { selector: 'h3', options: { uppercase: false } },
      { selector: 'table', format: 'block' },
    ],
  })
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

type ContentTypeHeader = { value?: unknown; params?: Record<string, unknown> } | undefined;

/** The message's own Content-Type, value and parameters lower-cased where they are strings (empty or odd headers give nulls). */
function rootContentType(p: ParsedMail): { value: string | null; reportType: string | null } {
  const ct = p.headers.get('content-type') as ContentTypeHeader;
  const str = (v: unknown) => (typeof v === 'string' && v.trim() ? v.trim().toLowerCase() : null);
  return { value: str(ct?.value), reportType: str(ct?.params?.['report-type']) };
}

/** The kind-relevant facts of a parsed message (see classifyMessage). */
function kindOf(p: ParsedMail, source: Buffer, fromEmail: string | null, subject: string, headers: ParsedMessage['headers']): MessageKind {
  const { value: contentType, reportType } = rootContentType(p);
  const dsnActions =
    contentType === 'multipart/report' && reportType === 'delivery-status'
      ? [...source.toString('latin1').matchAll(/^Action:[ \t]*([A-Za-z-]+)/gim)].map((m) => m[1].toLowerCase())
      : [];
  return classifyMessage({ fromEmail, subject, contentType, reportType, dsnActions, headers });
}

/** The options older versions parsed with (their legacy key depends on mailparser's text under them). */
const LEGACY_PARSER_OPTIONS = { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true, keepCidLinks: false } as const;
/** A DSN's machine-readable part is not text for a person: the report's own text/plain or HTML is (see bodyText). */
const SIMPLE_PARSER_OPTIONS = { ...LEGACY_PARSER_OPTIONS, keepDeliveryStatus: true } as const;
/** A part's media type, lower-cased; null when the header is empty or unreadable (`Content-Type: ;`). */
const mediaTypeOf = (a: { contentType?: unknown }) =>
  typeof a.contentType === 'string' && a.contentType.trim() ? a.contentType.trim().toLowerCase() : null;
const isDeliveryStatus = (a: { contentType?: unknown }) => mediaTypeOf(a) === 'message/delivery-status';

/**
 * Runs one reading step of a message; a failure drops only what that step reads, with a note,
 * and the rest of the message is stored (docs/inbox-sync.md, malformed parts).
 */
function guarded<T>(notes: string[], what: string, read: () => T, fallback: T): T {
  try {
    return read();
  } catch (err) {
    notes.push(`${what}: ${String((err as Error)?.message ?? err).slice(0, 200)}`);
    return fallback;
  }
}

function bodyText(p: ParsedMail, notes: string[]): string {
  const rootType = guarded(notes, 'content-type', () => rootContentType(p).value, null);
  const html = typeof p.html === 'string' ? p.html : '';
  // mailparser's own text: the text/plain parts (and HTML parts beside them) joined in order;
  // without any text/plain part it gives nothing, or its own conversion of a lone HTML body
  const text = (typeof p.text === 'string' ? p.text : '').trim();
  if (html.trim() && (!text || rootType === 'text/html')) {
    const converted = guarded(notes, 'html body dropped', () => htmlToReadableText(html), null);
    if (converted !== null || text) return converted ?? text;
    // the HTML could not be converted: its text without the markup, rather than nothing
    return html
      .replace(/<(style|script|head)\b[\s\S]*?<\/\1>/gi, ' ')
      .replace(/<[^>]*>/g, ' ')
      .replace(/[ \t]+/g, ' ')
      .trim();
  }
  if (!text) {
    // a delivery report with nothing but its machine-readable part: that part is all there is to read
    const status = p.attachments.find(isDeliveryStatus);
    if (status) return status.content.toString('utf8').trim();
  }
  return text;
}

const bounded = (s: string) => (s.length > MAX_CONTENT_CHARS ? `${s.slice(0, MAX_CONTENT_CHARS)}\n[… texte tronqué]` : s);

/** A source without a single `Name: value` header line is not a message: poison. */
class PoisonError extends Error {}
const hasHeaderField = (p: ParsedMail) => p.headerLines.some((h) => h.key !== '');

/** Shown instead of the body when the message's parts could not be read at all (its headers could). */
export const UNREADABLE_BODY_NOTE =
  '[Le contenu de ce message est illisible (structure MIME invalide) : consultez-le dans votre messagerie.]';

/**
 * The whole source parsed; when mailparser gives up on it (a part it cannot read), the header
 * block alone, so the message is still imported with a note. Throws only when not even the
 * header block gives a single field: the caller records poison.
 */
async function parseSource(source: Buffer, notes: string[]): Promise<{ p: ParsedMail; partsRead: boolean }> {
  const { simpleParser } = await import('mailparser'); // loaded on first use (cold starts)
  try {
    const p = await simpleParser(source, SIMPLE_PARSER_OPTIONS);
    if (!hasHeaderField(p)) throw new PoisonError('no header field could be read');
    return { p, partsRead: true };
  } catch (err) {
    if (err instanceof PoisonError) throw err;
    notes.push(`parts dropped: ${String((err as Error)?.message ?? err).slice(0, 200)}`);
  }
  const text = source.toString('latin1');
  const cut = text.search(/\r?\n\r?\n/);
  // the header block only, without its Content-Type: nothing left to descend into
  const head = (cut < 0 ? text : text.slice(0, cut)).replace(/^content-(type|transfer-encoding):[^\n]*(\n[ \t][^\n]*)*\n?/gim, '');
  const p = await simpleParser(Buffer.from(`${head.replace(/\r?\n?$/, '')}\r\n\r\n`, 'latin1'), SIMPLE_PARSER_OPTIONS);
  if (!hasHeaderField(p)) throw new PoisonError('no header field could be read');
  return { p, partsRead: false };
}

/**
 * One message, from its full source, or (oversize) from its header block only. A part that
 * cannot be read is dropped with a note (`notes`); throws only when no header block can be
 * read at all, and the caller records it as poison.
 */
export async function parseMessage(
  uid: number,
  source: Buffer,
  opts: ParseLimits & { oversize?: { bytes: number; maxBytes: number } },
): Promise<ParsedMessage> {
  const notes: string[] = [];
  const repaired = guarded(notes, 'header repair skipped', () => repairSource(source), null);
  const { p, partsRead } = await parseSource(repaired ?? source, notes);
  const from = guarded(notes, 'from', () => firstAddress(p.from), { address: null, name: '' });
  const subject = storableText(typeof p.subject === 'string' ? p.subject : '');
  const body = !partsRead ? UNREADABLE_BODY_NOTE : guarded(notes, 'body dropped', () => bodyText(p, notes), '');
  const text = opts.oversize ? oversizeNote(opts.oversize.bytes, opts.oversize.maxBytes) : bounded(storableText(body));
  const messageId = normaliseMessageId(typeof p.messageId === 'string' ? p.messageId : rawHeader(p, 'message-id'));
  const dateHeader = rawHeader(p, 'date');
  const attachments = opts.oversize ? [] : readAttachments(p, opts, notes);
  const legacyKey = messageId
    ? null
    : await guardedAsync(
        notes,
        'legacy key',
        () =>
          legacyKeyOf(p, source, repaired !== null, {
            fromEmail: from.address,
            dateHeader,
            oversizeText: opts.oversize ? text : null,
          }),
        null,
      );
  const headers: ParsedMessage['headers'] = {
    autoSubmitted: rawHeader(p, 'auto-submitted'),
    listId: rawHeader(p, 'list-id'),
    listUnsubscribe: rawHeader(p, 'list-unsubscribe'),
    precedence: rawHeader(p, 'precedence'),
    xAutoreply: rawHeader(p, 'x-autoreply'),
    xAutorespond: rawHeader(p, 'x-autorespond'),
  };
  const message: ParsedMessage = {
    uid,
    externalId: messageId ?? fallbackKey(source, { oversizeBytes: opts.oversize?.bytes }),
    legacyKey,
    kind: guarded(notes, 'kind', () => kindOf(p, source, from.address, subject, headers), 'person' as MessageKind),
    messageId,
    fromEmail: from.address,
    fromName: storableText(from.name || from.address || 'Inconnu'),
    to: storableText(guarded(notes, 'to', () => (p.to ? (Array.isArray(p.to) ? p.to.map((t) => t.text).join(', ') : p.to.text) : ''), '')),
    subject,
    text,
    inReplyTo: parseIdList(rawHeader(p, 'in-reply-to'))[0] ?? null,
    references: parseIdList(rawHeader(p, 'references')),
    // mailparser turns an unreadable Date into "now": parse the raw header the same way, keep null
    sentAt: storableDate(dateHeader ? new Date(dateHeader.replace(/\s*\([^)]*\)\s*$/, '')) : null),
    headers,
    attachments,
    oversize: !!opts.oversize,
    bytes: opts.oversize?.bytes ?? source.length,
    notes,
  };
  message.reports = guarded(notes, 'report dropped', () => reportFacts(message, source), undefined);
  return message;
}

async function guardedAsync<T>(notes: string[], what: string, read: () => Promise<T>, fallback: T): Promise<T> {
  try {
    return await read();
  } catch (err) {
    notes.push(`${what}: ${String((err as Error)?.message ?? err).slice(0, 200)}`);
    return fallback;
  }
}

/** The files the client sent, each read on its own: one that cannot be read is dropped with a note. */
function readAttachments(p: ParsedMail, opts: ParseLimits, notes: string[]): ParsedAttachment[] {
  const out: ParsedAttachment[] = [];
  for (const a of Array.isArray(p.attachments) ? p.attachments : []) {
    const read = guarded(
      notes,
      'attachment dropped',
      (): ParsedAttachment | null => {
        if (a.related && !a.filename) return null; // images embedded in the HTML body, not files the client sent
        if (isDeliveryStatus(a)) return null; // the report's data, read by the classifier; its text is in the body
        const name = sanitiseFilename(typeof a.filename === 'string' ? a.filename : undefined);
        // an empty or unreadable Content-Type: an unknown file, which is what octet-stream says
        const mimeType = mediaTypeOf(a) ?? 'application/octet-stream';
        const content = Buffer.isBuffer(a.content) ? a.content : null;
        if (!content) throw new Error(`${name}: no readable content`);
        const tooLarge = content.length > opts.maxAttachmentBytes;
        return {
          name,
          mimeType,
          fileType: fileTypeOf(name, mimeType),
          size: content.length,
          content: tooLarge ? null : content,
          skippedReason: tooLarge ? `too_large: ${content.length} bytes > ${opts.maxAttachmentBytes}` : null,
        };
      },
      null,
    );
    if (read) out.push(read);
  }
  return out;
}

/** Without a Message-ID: the key older versions stored, from mailparser's subject and plain text of the unrepaired source. */
async function legacyKeyOf(
  p: ParsedMail,
  source: Buffer,
  repaired: boolean,
  o: { fromEmail: string | null; dateHeader: string | null; oversizeText: string | null },
) {
  const { simpleParser } = await import('mailparser');
  const old = repaired || rootContentType(p).value === 'multipart/report' ? await simpleParser(source, LEGACY_PARSER_OPTIONS) : p;
  const oldText = o.oversizeText ?? bounded(storableText((old.text ?? '').trim()));
  return legacyFallbackKey({ fromEmail: o.fromEmail, dateHeader: o.dateHeader, subject: storableText(old.subject ?? ''), body: oldText });
}

export type ParseItem = { uid: number; source: Buffer; oversize?: { bytes: number; maxBytes: number } };
export type ParsedSegment = { messages: ParsedMessage[]; poison: { uid: number; error: string }[] };

/** Parses a segment's sources in order; what cannot be parsed becomes poison, never a blocked mailbox. */
export async function parseItems(items: readonly ParseItem[], limits: ParseLimits): Promise<ParsedSegment> {
  const out: ParsedSegment = { messages: [], poison: [] };
  for (const item of items) {
    try {
      out.messages.push(await parseMessage(item.uid, item.source, { ...limits, oversize: item.oversize }));
    } catch (err) {
      out.poison.push({ uid: item.uid, error: `unparseable: ${String((err as Error)?.message ?? err).slice(0, 300)}` });
    }
  }
  return out;
}
