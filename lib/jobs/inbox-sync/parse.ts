/**
 * MIME parsing with mailparser's simpleParser (charsets through iconv-lite, RFC 2047/2231,
 * broken boundaries tolerated), after decode.ts repaired what it would garble (8-bit headers,
 * UTF-7). Chosen over postal-mime: see docs/inbox-sync.md.
 */
import type { ParsedMail, AddressObject } from 'mailparser';
import { convert as htmlToText } from 'html-to-text';
import { repairSource } from './decode.js';
import { reportFacts, type ReportFacts } from '../../bounces/facts.js';
import {
  classifyMessage, fallbackKey, legacyFallbackKey, normaliseMessageId, parseIdList, sanitiseFilename, fileTypeOf, storableDate, storableText,
  type MessageKind,
} from './threading.js';

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
    autoSubmitted: string | null; listId: string | null; listUnsubscribe: string | null; precedence: string | null;
    xAutoreply: string | null; xAutorespond: string | null;
  };
  attachments: ParsedAttachment[];
  /** The message was over MAX_MESSAGE_BYTES: headers only, with a note as its content. */
  oversize: boolean;
  bytes: number;
  /** A bounce's or an auto-reply's facts, kept in external_metadata (lib/bounces/facts.ts). */
  reports?: ReportFacts;
};

export type ParseLimits = { maxAttachmentBytes: number };

/** Stored message text is bounded: a 20 MB text/plain body is a log dump, not a conversation. */
export const MAX_CONTENT_CHARS = 1_000_000;

function rawHeader(p: ParsedMail, key: string): string | null {
  const line = p.headerLines.find((h) => h.key === key)?.line;
  if (!line) return null;
  const i = line.indexOf(':');
  return line.slice(i + 1).replace(/\r?\n[ \t]+/g, ' ').trim() || null;
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
      { selector: 'h1', options: { uppercase: false } }, { selector: 'h2', options: { uppercase: false } },
      { selector: 'h3', options: { uppercase: false } }, { selector: 'table', format: 'block' },
    ],
  }).replace(/\n{3,}/g, '\n\n').trim();
}

type ContentTypeHeader = { value?: string; params?: Record<string, string> } | undefined;

/** The kind-relevant facts of a parsed message (see classifyMessage). */
function kindOf(p: ParsedMail, source: Buffer, fromEmail: string | null, subject: string, headers: ParsedMessage['headers']): MessageKind {
  const ct = p.headers.get('content-type') as ContentTypeHeader;
  const contentType = ct?.value?.toLowerCase() ?? null;
  const reportType = ct?.params?.['report-type'] ?? null;
  const dsnActions = contentType === 'multipart/report' && reportType?.toLowerCase() === 'delivery-status'
    ? [...source.toString('latin1').matchAll(/^Action:[ \t]*([A-Za-z-]+)/gim)].map((m) => m[1].toLowerCase())
    : [];
  return classifyMessage({ fromEmail, subject, contentType, reportType, dsnActions, headers });
}

/** The options older versions parsed with (their legacy key depends on mailparser's text under them). */
const LEGACY_PARSER_OPTIONS = { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true, keepCidLinks: false } as const;
/** A DSN's machine-readable part is not text for a person: the report's own text/plain or HTML is (see bodyText). */
const SIMPLE_PARSER_OPTIONS = { ...LEGACY_PARSER_OPTIONS, keepDeliveryStatus: true } as const;
const isDeliveryStatus = (a: { contentType?: string }) => a.contentType?.toLowerCase() === 'message/delivery-status';

function bodyText(p: ParsedMail): string {
  const rootType = (p.headers.get('content-type') as ContentTypeHeader)?.value?.toLowerCase();
  const html = typeof p.html === 'string' ? p.html : '';
  // mailparser's own text: the text/plain parts (and HTML parts beside them) joined in order;
  // without any text/plain part it gives nothing, or its own conversion of a lone HTML body
  const text = (p.text ?? '').trim();
  if (html.trim() && (!text || rootType === 'text/html')) return htmlToReadableText(html);
  if (!text) {
    // a delivery report with nothing but its machine-readable part: that part is all there is to read
    const status = p.attachments.find(isDeliveryStatus);
    if (status) return status.content.toString('utf8').trim();
  }
  return text;
}

const bounded = (s: string) => (s.length > MAX_CONTENT_CHARS ? `${s.slice(0, MAX_CONTENT_CHARS)}\n[… texte tronqué]` : s);

/**
 * One message, from its full source, or (oversize) from its header block only. Throws on input
 * the parser cannot read at all; the caller records it as poison.
 */
export async function parseMessage(
  uid: number, source: Buffer, opts: ParseLimits & { oversize?: { bytes: number; maxBytes: number } },
): Promise<ParsedMessage> {
  const { simpleParser } = await import('mailparser'); // loaded on first use (cold starts)
  const repaired = repairSource(source);
  const p = await simpleParser(repaired ?? source, SIMPLE_PARSER_OPTIONS);
  const from = firstAddress(p.from);
  const subject = storableText(p.subject ?? '');
  const text = opts.oversize ? oversizeNote(opts.oversize.bytes, opts.oversize.maxBytes) : bounded(storableText(bodyText(p)));
  const messageId = normaliseMessageId(typeof p.messageId === 'string' ? p.messageId : rawHeader(p, 'message-id'));
  const dateHeader = rawHeader(p, 'date');
  const attachments: ParsedAttachment[] = [];
  for (const a of opts.oversize ? [] : p.attachments) {
    if (a.related && !a.filename) continue; // images embedded in the HTML body, not files the client sent
    if (isDeliveryStatus(a)) continue; // the report's data, read by the classifier; its text is in the body
    const name = sanitiseFilename(a.filename);
    const mimeType = a.contentType ? a.contentType.toLowerCase() : null;
    const tooLarge = a.size > opts.maxAttachmentBytes;
    attachments.push({
      name, mimeType, fileType: fileTypeOf(name, mimeType), size: a.size,
      content: tooLarge ? null : a.content,
      skippedReason: tooLarge ? `too_large: ${a.size} bytes > ${opts.maxAttachmentBytes}` : null,
    });
  }
  let legacyKey: string | null = null;
  if (!messageId) {
    // the key older versions stored: mailparser's subject and plain text of the unrepaired source
    const report = (p.headers.get('content-type') as ContentTypeHeader)?.value?.toLowerCase() === 'multipart/report';
    const old = repaired || report ? await simpleParser(source, LEGACY_PARSER_OPTIONS) : p;
    const oldText = opts.oversize ? text : bounded(storableText((old.text ?? '').trim()));
    legacyKey = legacyFallbackKey({ fromEmail: from.address, dateHeader, subject: storableText(old.subject ?? ''), body: oldText });
  }
  const headers: ParsedMessage['headers'] = {
    autoSubmitted: rawHeader(p, 'auto-submitted'),
    listId: rawHeader(p, 'list-id'),
    listUnsubscribe: rawHeader(p, 'list-unsubscribe'),
    precedence: rawHeader(p, 'precedence'),
    xAutoreply: rawHeader(p, 'x-autoreply'),
    xAutorespond: rawHeader(p, 'x-autorespond'),
  };
  const inReplyTo = parseIdList(rawHeader(p, 'in-reply-to'))[0] ?? null;
  const message: ParsedMessage = {
    uid,
    externalId: messageId ?? fallbackKey(source, { oversizeBytes: opts.oversize?.bytes }),
    legacyKey,
    kind: kindOf(p, source, from.address, subject, headers),
    messageId,
    fromEmail: from.address,
    fromName: storableText(from.name || from.address || 'Inconnu'),
    to: storableText(p.to ? (Array.isArray(p.to) ? p.to.map((t) => t.text).join(', ') : p.to.text) : ''),
    subject,
    text,
    inReplyTo,
    references: parseIdList(rawHeader(p, 'references')),
    // mailparser turns an unreadable Date into "now": parse the raw header the same way, keep null
    sentAt: storableDate(dateHeader ? new Date(dateHeader.replace(/\s*\([^)]*\)\s*$/, '')) : null),
    headers,
    attachments,
    oversize: !!opts.oversize,
    bytes: opts.oversize?.bytes ?? source.length,
  };
  message.reports = reportFacts(message, source);
  return message;
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
