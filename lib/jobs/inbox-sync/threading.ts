/**
 * The pure rules of docs/inbox-sync.md: dedupe keys, client eligibility, threading, attachment
 * names, back-off. No I/O: rows and `now` in, decisions out.
 */
import { createHash } from 'node:crypto';

/** Message-ID without angle brackets and surrounding space, compared exactly (docs/inbox-sync.md, "Dedupe key"). */
export function normaliseMessageId(raw: string | null | undefined): string | null {
  if (!raw) return null;
  let s = raw.trim();
  // a header with several ids (broken, but seen): the first one is the message's
  const bracketed = /<([^<>]*)>/.exec(s);
  if (bracketed) s = bracketed[1];
  s = s.replace(/[\s<>]+/g, '');
  return s.length > 0 && s.length <= 995 ? s : null; // 998 is the RFC 5322 line limit
}

/** The ids of a References / In-Reply-To header, in header order. */
export function parseIdList(raw: string | string[] | null | undefined): string[] {
  if (!raw) return [];
  const text = Array.isArray(raw) ? raw.join(' ') : raw;
  const ids = [...text.matchAll(/<([^<>]+)>/g)].map((m) => normaliseMessageId(m[1])).filter((x): x is string => !!x);
  if (ids.length) return ids;
  return text.split(/\s+/).map((x) => normaliseMessageId(x)).filter((x): x is string => !!x);
}

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
  'received', 'return-path', 'delivered-to', 'envelope-to', 'original-recipient', 'authentication-results',
  'received-spf', 'dkim-signature', 'domainkey-signature', 'arc-seal', 'arc-message-signature', 'arc-authentication-results',
  'status', 'content-length', 'lines', 'resent-date', 'resent-from', 'resent-to', 'resent-message-id', 'resent-sender',
  'list-id', 'list-unsubscribe', 'list-unsubscribe-post', 'list-post', 'list-help', 'list-archive', 'list-owner', 'list-subscribe',
  'precedence', 'errors-to', 'sender', 'mailing-list', 'feedback-id', 'bounces-to',
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
  for (const field of block.toString('latin1').replace(/\r?\n(?=[ \t])/g, '').split(/\r?\n/)) {
    const colon = field.indexOf(':');
    if (colon <= 0) continue;
    out.push({ name: field.slice(0, colon).trim().toLowerCase(), value: field.slice(colon + 1).replace(/[ \t]+/g, ' ').trim() });
  }
  return out;
}

function normaliseBody(body: Buffer): Buffer {
  // CRLF and LF are the same message (mbox stores, IMAP servers and clients differ); trailing
  // blank lines are added by some relays
  let s = body.toString('latin1').replace(/\r\n/g, '\n').replace(/[\s]+$/, '');
  if (s.length) s += '\n';
  return Buffer.from(s, 'latin1');
}

/**
 * The key that versions before the `sha256:` one stored for mail without a Message-ID (sender,
 * raw Date, subject and plain text only: it merged HTML-only mail and mail differing by an
 * attachment). Only computed to recognise rows stored by them; see docs/inbox-sync.md.
 */
export function legacyFallbackKey(parts: { fromEmail: string | null; dateHeader: string | null; subject: string | null; body: string }): string {
  const h = createHash('sha256');
  for (const p of [parts.fromEmail?.toLowerCase() ?? '', parts.dateHeader?.trim() ?? '', parts.subject ?? '', parts.body.replace(/\r\n/g, '\n').trim()]) {
    h.update(p);
    h.update('\u0000');
  }
  return `hash:${h.digest('hex')}`;
}

const SUBJECT_PREFIX = /^\s*(?:(?:re|fwd?|tr|aw)\s*(?:\[\d+\])?\s*:\s*)+/i;
/** Subject without reply/forward prefixes (`re:`, `fwd:`, `fw:`, `tr:`, `aw:`), case-folded for matching. */
export function normaliseSubject(subject: string | null | undefined): string {
  let s = (subject ?? '').replace(/\s+/g, ' ').trim();
  let prev: string;
  do {
    prev = s;
    s = s.replace(SUBJECT_PREFIX, '').replace(/^[:\s]+/, '').trim();
  } while (s !== prev);
  return s;
}
export const subjectKey = (subject: string | null | undefined) => normaliseSubject(subject).toLowerCase();

// Local parts of automated senders that must never become clients: role
// accounts at the start (`notifications@`, `mailer-daemon@`), no-reply anywhere (`gmail-noreply@`,
// `notifications-noreply@`, `ne-pas-repondre.factures@`): no person has such an address.
const ROLE_LOCAL = /^(?:mailer[-_.]?daemon|postmaster|bounces?|notifications?|newsletters?|automated?|auto[-_.]?confirm)(?:[-_.+].*)?$/i;
const NO_REPLY_ANYWHERE = /no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|ne[-_.]?pas[-_.]?r[eé]pondre|nepasrepondre|pas[-_.]?de[-_.]?r[eé]ponse/i;
const BOUNCE_LOCAL = /^(?:mailer[-_.]?daemon|postmaster)(?:[-_.+].*)?$/i;

/** What kind of message this is; stored in `inbox_messages.kind` (docs/inbox-sync.md, kinds). */
export const MESSAGE_KINDS = ['person', 'auto_reply', 'bounce', 'report', 'list', 'automated'] as const;
export type MessageKind = (typeof MESSAGE_KINDS)[number];

export type MessageFacts = {
  fromEmail: string | null;
  subject?: string | null;
  /** The top-level Content-Type, lower-cased (`multipart/report`), and its `report-type` parameter. */
  contentType?: string | null;
  reportType?: string | null;
  /** `Action:` values of a delivery-status report (RFC 3464), lower-cased. */
  dsnActions?: readonly string[];
  headers: {
    autoSubmitted?: string | null; listId?: string | null; listUnsubscribe?: string | null; precedence?: string | null;
    xAutoreply?: string | null; xAutorespond?: string | null; xAutoResponseSuppress?: string | null;
  };
};

// Subjects of out-of-office and auto-replies as the common clients write them (Outlook/Exchange,
// Gmail, Apple, Thunderbird, in French, English, German, Spanish, Italian, Dutch)
// The marker must be the whole subject or be followed by a colon: "Auto : révision" or "Absent
// jeudi" from a garage's client is a person.
const AUTO_REPLY_SUBJECT = /^\s*(?:r[ée]ponse automatique|automatic reply|auto(?:matic)?[- ]?reply|autor[ée]ponse|out of (?:the )?office(?: auto-?reply)?|absence du bureau|absent du bureau|abwesenheitsnotiz|automatische antwort|respuesta autom[áa]tica|risposta automatica|automatisch antwoord)[\s\u00a0]*(?::|$)/i;
// Subjects of bounces sent without a proper report (old Exim/qmail, some Exchange versions)
const BOUNCE_SUBJECT = /^\s*(?:undeliver(?:ed|able)\b|mail delivery (?:failed|failure|system)|delivery (?:status notification \(failure\)|failure|has failed)|returned mail\b|failure notice\b|non remis\b|message non distribu[ée]|[ée]chec de (?:la )?(?:remise|distribution))/i;

/**
 * The kind of a message, from its headers and structure only (pure; docs/inbox-sync.md):
 * `bounce` a failed-delivery report (DSN with a failed action, or a mailer-daemon bounce);
 * `report` any other machine report (read receipt MDN, abuse/feedback ARF, delay or success DSN);
 * `auto_reply` an automatic answer (out of office, vacation, "we received your message");
 * `list` mailing lists and bulk mail; `automated` other machine mail (no-reply senders,
 * `Auto-Submitted: auto-generated`); `person` the rest.
 */
export function classifyMessage(m: MessageFacts): MessageKind {
  const email = m.fromEmail?.toLowerCase() ?? '';
  const local = email.slice(0, Math.max(0, email.lastIndexOf('@')));
  const h = m.headers;
  const auto = h.autoSubmitted?.trim().toLowerCase().split(/[;\s]/)[0] ?? '';
  const subject = m.subject ?? '';
  if (m.contentType === 'multipart/report') {
    const type = m.reportType?.trim().toLowerCase() ?? '';
    if (type === 'delivery-status') return (m.dsnActions ?? []).some((a) => a === 'failed') || !(m.dsnActions ?? []).length ? 'bounce' : 'report';
    return 'report'; // disposition-notification (MDN), feedback-report (ARF), others
  }
  if (BOUNCE_LOCAL.test(local) || (BOUNCE_SUBJECT.test(subject) && (auto !== '' && auto !== 'no' || !local))) return 'bounce';
  if (auto === 'auto-replied' || h.xAutoreply || h.xAutorespond || /^auto[-_]?reply$/i.test(h.precedence?.trim() ?? '') || AUTO_REPLY_SUBJECT.test(subject)) return 'auto_reply';
  if (h.listId || h.listUnsubscribe || /^(?:bulk|list|junk)$/i.test(h.precedence?.trim() ?? '')) return 'list';
  if ((auto && auto !== 'no') || NO_REPLY_ANYWHERE.test(local) || ROLE_LOCAL.test(local)) return 'automated';
  return 'person';
}

export type SenderFacts = {
  fromEmail: string | null;
  /** The message's kind (classifyMessage); absent = judged from the headers below only. */
  kind?: MessageKind;
  headers: { autoSubmitted?: string | null; listId?: string | null; listUnsubscribe?: string | null; precedence?: string | null };
};

/** Why this sender must not become a client, or null for a real person. */
export function clientCreationBlocker(m: SenderFacts, blockedDomains: readonly string[]): string | null {
  const email = m.fromEmail?.toLowerCase() ?? '';
  const at = email.lastIndexOf('@');
  if (at <= 0) return 'no_sender';
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  const blocked = blockedDomains.map((d) => d.trim().toLowerCase().replace(/^@/, '')).filter(Boolean);
  if (blocked.some((d) => domain === d || domain.endsWith(`.${d}`))) return 'blocked_domain';
  if (m.kind === 'bounce' || m.kind === 'report' || m.kind === 'auto_reply') return m.kind;
  if (NO_REPLY_ANYWHERE.test(local) || ROLE_LOCAL.test(local)) return 'noreply';
  const auto = m.headers.autoSubmitted?.trim().toLowerCase();
  if (auto && auto !== 'no') return 'auto_submitted';
  if (m.headers.listId || m.headers.listUnsubscribe) return 'mailing_list';
  if (/^(bulk|list|junk)$/i.test(m.headers.precedence?.trim() ?? '')) return 'bulk';
  if (m.kind && m.kind !== 'person') return m.kind;
  return null;
}

/** Conversations seen by subject are matched only within this window (docs/inbox-sync.md, "Threading"). */
export const SUBJECT_MATCH_DAYS = 30;

export type ThreadInput = {
  inReplyTo: string | null;
  /** References in header order (oldest first); tried newest first. */
  references: readonly string[];
  subjectKey: string;
  clientId: number | null;
};

export type ThreadIndex = {
  /** external_id → conversation id, for the ids this batch refers to (and what it imported). */
  byExternalId: ReadonlyMap<string, number>;
  /** `${clientId}\u0000${subjectKey}` → the client's most recent conversation with that subject in the window. */
  byClientSubject: ReadonlyMap<string, number>;
};

export const clientSubjectKey = (clientId: number, key: string) => `${clientId}\u0000${key}`;

export type ThreadDecision = { conversationId: number; via: 'in-reply-to' | 'references' | 'subject' } | { conversationId: null; via: 'new' };

/**
 * In-Reply-To, then References newest first, matched exactly; else the same client's
 * conversation with the same subject; else a new one. Never merges senders on subject alone:
 * without a client there is no subject match at all.
 */
export function threadFor(m: ThreadInput, index: ThreadIndex): ThreadDecision {
  if (m.inReplyTo) {
    const c = index.byExternalId.get(m.inReplyTo);
    if (c !== undefined) return { conversationId: c, via: 'in-reply-to' };
  }
  for (let i = m.references.length - 1; i >= 0; i--) {
    const c = index.byExternalId.get(m.references[i]);
    if (c !== undefined) return { conversationId: c, via: 'references' };
  }
  if (m.clientId !== null && m.subjectKey) {
    const c = index.byClientSubject.get(clientSubjectKey(m.clientId, m.subjectKey));
    if (c !== undefined) return { conversationId: c, via: 'subject' };
  }
  return { conversationId: null, via: 'new' };
}

/** A Date header in the future (a wrong clock, spam) never puts a conversation above today's mail. */
export function clampToNow(date: Date | null | undefined, now: Date): Date {
  if (!date || Number.isNaN(date.getTime())) return now;
  return date > now ? now : date;
}

/** A sent_at that Postgres can store and that means something (years 1970–9999), else null. */
export function storableDate(date: Date | null | undefined): Date | null {
  if (!date || Number.isNaN(date.getTime())) return null;
  const y = date.getUTCFullYear();
  return y >= 1970 && y <= 9999 ? date : null;
}

/** Longest stored attachment name: file systems and browsers cope with 255 bytes; keep room. */
export const MAX_FILENAME_CHARS = 180;

/** A file name safe anywhere: no path, no control or reserved characters, bounded length. */
export function sanitiseFilename(raw: string | null | undefined, fallback = 'piece-jointe'): string {
  let s = (raw ?? '').normalize('NFC');
  s = s.split(/[\\/]/).pop() ?? ''; // keep the last path segment only
  s = s.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g, ''); // controls and bidi overrides
  s = s.replace(/[<>:"|?*]/g, '_').replace(/\s+/g, ' ').trim();
  s = s.replace(/^\.+/, '').replace(/[. ]+$/, ''); // no hidden files, no `..`, no trailing dots (Windows)
  if (!s) s = fallback;
  if (s.length > MAX_FILENAME_CHARS) {
    const dot = s.lastIndexOf('.');
    const ext = dot > 0 && s.length - dot <= 10 ? s.slice(dot) : '';
    s = s.slice(0, MAX_FILENAME_CHARS - ext.length) + ext;
  }
  return s;
}

/** The original's file_type classes, from the extension and mime type. */
export function fileTypeOf(name: string, mime: string | null): 'image' | 'pdf' | 'document' | 'other' {
  const ext = name.toLowerCase().split('.').pop() ?? '';
  if (mime?.startsWith('image/') || ['jpg', 'jpeg', 'png', 'gif', 'webp', 'bmp', 'heic', 'svg'].includes(ext)) return 'image';
  if (mime === 'application/pdf' || ext === 'pdf') return 'pdf';
  if (['doc', 'docx', 'odt', 'xls', 'xlsx', 'ods', 'ppt', 'pptx', 'odp', 'txt', 'csv', 'rtf'].includes(ext)) return 'document';
  return 'other';
}

/** Back-off after a failed sync: the cron period doubled per failure, capped (docs/inbox-sync.md, "Failures"). */
export const BACKOFF_BASE_MS = 5 * 60_000; // the cron runs every 5 min: the first retry skips one run
export const BACKOFF_CAP_MS = 60 * 60_000; // at most an hour without trying
export function nextSyncAfterFailure(consecutiveFailures: number, now: Date): Date {
  const n = Math.max(1, consecutiveFailures);
  const delay = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(n - 1, 20));
  return new Date(now.getTime() + delay);
}

/** Login refused this many times in a row: the integration is paused and the company told. */
export const AUTH_FAILURES_BEFORE_PAUSE = 3;

/** Text Postgres accepts: no NUL characters, valid UTF-16 (lone surrogates removed). */
export function storableText(s: string): string {
  return s.replace(/\u0000/g, '').replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}
