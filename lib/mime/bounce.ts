// Pure bounce parsing: what a delivery failure says about a message we sent.
// Reads the raw source as text (bounces are 7-bit in practice; quoted-printable is undone).
// Rules and formats: docs/bounces.md.
import { normaliseMessageId, parseIdList } from '../mail/message-id.js';

export type BounceSeverity = 'hard' | 'soft';

export type ParsedBounce = {
  recipients: string[];
  /** RFC 3463 enhanced status code (e.g. "5.1.1") when the bounce states one. */
  status: string | null;
  diagnostic: string | null;
  severity: BounceSeverity;
  /** Message-ID of the message that failed, from the returned headers or In-Reply-To/References. */
  originalMessageId: string | null;
  originalSubject: string | null;
};

// Texts that mean the address does not exist, whatever the status code says.
const HARD_TEXTS =
  /user unknown|unknown user|no such user|mailbox (?:does not exist|unavailable|not found)|does not exist|address not found|address couldn't be found|no mailbox here|recipient (?:address )?rejected|invalid recipient|adresse inconnue|n'existe pas|account (?:has been )?disabled/i;
// Texts that mean "try later": mailbox full, delayed, temporary failures.
const SOFT_TEXTS = /mailbox (?:is )?full|over ?quota|quota exceeded|delayed|temporar(?:y|ily)|try again later|will retry|boîte pleine/i;

const EMAIL = /[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/;
const EMAIL_G = new RegExp(EMAIL.source, 'g');
const ENHANCED_STATUS = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/;

function splitHeadBody(text: string): { head: string; body: string } {
  const m = /\r?\n\r?\n/.exec(text);
  return m ? { head: text.slice(0, m.index), body: text.slice(m.index + m[0].length) } : { head: text, body: '' };
}

/** Unfolded header lines of one header block, names lower-cased. */
export function headerFields(block: string): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && out.length) out[out.length - 1]!.value += ' ' + line.trim();
    else {
      const i = line.indexOf(':');
      if (i > 0 && !/\s/.test(line.slice(0, i))) out.push({ name: line.slice(0, i).trim().toLowerCase(), value: line.slice(i + 1).trim() });
    }
  }
  return out;
}

const first = (fields: { name: string; value: string }[], name: string) => fields.find((f) => f.name === name)?.value ?? null;

function decodeQuotedPrintable(s: string): string {
  if (!/=[0-9A-F]{2}|=\r?\n/.test(s)) return s;
  return s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

function bareAddress(raw: string): string | null {
  const m = EMAIL.exec(raw.replace(/^rfc822;\s*/i, ''));
  return m ? m[0].toLowerCase() : null;
}

export function severityOf(status: string | null, diagnostic: string | null, action: string | null): BounceSeverity {
  const text = diagnostic ?? '';
  if (action && /delayed/i.test(action)) return 'soft';
  if (status?.startsWith('5')) return 'hard';
  if (status?.startsWith('4')) return 'soft';
  if (HARD_TEXTS.test(text)) return 'hard';
  if (SOFT_TEXTS.test(text)) return 'soft';
  const smtp = /\b([45])\d\d[ -]/.exec(text);
  if (smtp) return smtp[1] === '5' ? 'hard' : 'soft';
  // A failure notice without any code: the server gave up on the address.
  return 'hard';
}

function statusIn(text: string): string | null {
  const m = ENHANCED_STATUS.exec(text);
  return m ? `${m[1]}.${m[2]}.${m[3]}` : null;
}

/** Message-ID and Subject of the returned original (message/rfc822 or text/rfc822-headers part, or quoted headers). */
function returnedHeaders(body: string): { messageId: string | null; subject: string | null } {
  let messageId: string | null = null;
  let subject: string | null = null;
  const lines = body.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    let value: string | null = null;
    const mid = /^\s*Message-ID:\s*(.*)$/i.exec(line);
    if (mid && !messageId) {
      value = mid[1]!;
      if (!value.includes('>') && lines[i + 1] && /^[ \t]/.test(lines[i + 1]!)) value += lines[i + 1]!.trim();
      messageId = normaliseMessageId(value);
    }
    const sub = /^\s*Subject:\s*(.*)$/i.exec(line);
    if (sub && subject === null) subject = sub[1]!.trim();
  }
  return { messageId, subject };
}

/** Per-recipient groups of an RFC 3464 message/delivery-status part. */
function deliveryStatus(body: string): { recipient: string; action: string | null; status: string | null; diagnostic: string | null }[] {
  const out: { recipient: string; action: string | null; status: string | null; diagnostic: string | null }[] = [];
  const blocks = body.split(/\r?\n[ \t]*\r?\n/);
  for (const block of blocks) {
    const fields = headerFields(block);
    const rcpt = first(fields, 'final-recipient') ?? first(fields, 'original-recipient');
    if (!rcpt) continue;
    const address = bareAddress(rcpt);
    if (!address) continue;
    const diagnostic = first(fields, 'diagnostic-code')?.replace(/^smtp;\s*/i, '') ?? null;
    out.push({
      recipient: address,
      action: first(fields, 'action'),
      status: statusIn(first(fields, 'status') ?? '') ?? statusIn(diagnostic ?? ''),
      diagnostic,
    });
  }
  return out;
}

// Lines in plain-text bounces that carry the server's reason.
const DIAGNOSTIC_LINE =
  /(?:said|replied|returned|error|reason|remote server returned|diagnostic)[^\n]*?[:'"]\s*(.*\d{3}.*|.*(?:unknown|exist|found|full|quota|rejected).*)$/im;

function plainDiagnostic(text: string): string | null {
  const m = DIAGNOSTIC_LINE.exec(text);
  if (m) return m[1]!.replace(/['"]+$/, '').trim();
  const coded = /^.*\b[45]\d\d[ -]\d?\.?.*$/m.exec(text);
  if (coded) return coded[0].trim();
  const qmail = /^.*\(#[45]\.\d+\.\d+\).*$/m.exec(text);
  if (qmail) return qmail[0].trim();
  const texts = new RegExp(`^.*(?:${HARD_TEXTS.source}|${SOFT_TEXTS.source}).*$`, 'im').exec(text);
  return texts ? texts[0].trim() : null;
}

/** Recipients named by a plain-text bounce (Postfix/qmail `<a@b>:`, Exim indented lines, Exchange/Gmail sentences). */
function plainRecipients(text: string, exclude: Set<string>): string[] {
  const found: string[] = [];
  const add = (a: string | null) => {
    if (a && !exclude.has(a) && !found.includes(a)) found.push(a);
  };
  for (const m of text.matchAll(/^<([^>\s]+@[^>\s]+)>:/gm)) add(bareAddress(m[1]!));
  if (!found.length) for (const m of text.matchAll(/^[ \t]{2,}([^\s@]+@[^\s]+)\s*$/gm)) add(bareAddress(m[1]!));
  if (!found.length) {
    // the French texts are matched whatever the charset did to their accents (UTF-8 read as Latin-1)
    const sentence =
      /(?:delivered to|message to|delivery to the following recipients?[^\n]*\n\s*|delivery has failed to these recipients or groups:\s*|wasn't delivered to|n'a pas pu \S{4,6} remis \S{1,2}|couldn't be delivered to)\s*<?([^\s<>,]+@[^\s<>,]+)>?/i.exec(
        text,
      );
    if (sentence) add(bareAddress(sentence[1]!));
  }
  return found;
}

/**
 * Parses a message already classified as a bounce. Returns null when nothing in it names
 * a failed recipient (a bounce we cannot act on is left alone, never guessed).
 */
export function parseBounce(source: Buffer | string): ParsedBounce | null {
  const raw = typeof source === 'string' ? source : source.toString('latin1');
  const { head, body: rawBody } = splitHeadBody(raw);
  const top = headerFields(head);
  const body = decodeQuotedPrintable(rawBody);
  const fromAddr = bareAddress(first(top, 'from') ?? '');
  const exclude = new Set<string>(fromAddr ? [fromAddr] : []);
  const toAddr = bareAddress(first(top, 'to') ?? '');
  if (toAddr) exclude.add(toAddr);

  const returned = returnedHeaders(body);
  const threadIds = [...parseIdList(first(top, 'in-reply-to')), ...parseIdList(first(top, 'references'))];
  const originalMessageId = returned.messageId ?? threadIds[0] ?? null;

  const dsn = deliveryStatus(body).filter((g) => !g.action || !/^(?:delivered|relayed|expanded)$/i.test(g.action));
  if (dsn.length) {
    const worst = dsn.find((g) => severityOf(g.status, g.diagnostic, g.action) === 'hard') ?? dsn[0]!;
    return {
      recipients: [...new Set(dsn.map((g) => g.recipient))],
      status: worst.status,
      diagnostic: worst.diagnostic ?? plainDiagnostic(body),
      severity: severityOf(worst.status, worst.diagnostic ?? plainDiagnostic(body), worst.action),
      originalMessageId,
      originalSubject: returned.subject,
    };
  }

  const failedHeader = top
    .filter((f) => f.name === 'x-failed-recipients')
    .flatMap((f) => f.value.match(EMAIL_G) ?? [])
    .map((a) => a.toLowerCase());
  // The part of the text before the returned original: addresses there are the failed ones.
  const cut = body.search(
    /^(?:-{2,}.*(?:original message|returned message|below this line).*|Content-Type:\s*(?:message\/rfc822|text\/rfc822-headers).*)$/im,
  );
  const notice = cut > 0 ? body.slice(0, cut) : body;
  const recipients = failedHeader.length ? [...new Set(failedHeader)] : plainRecipients(notice, exclude);
  if (!recipients.length) return null;
  const diagnostic = plainDiagnostic(notice);
  const status = statusIn(diagnostic ?? '') ?? statusIn(notice);
  return {
    recipients,
    status,
    diagnostic,
    severity: severityOf(status, diagnostic ?? notice, /delay/i.test(first(top, 'subject') ?? '') ? 'delayed' : null),
    originalMessageId,
    originalSubject: returned.subject,
  };
}

/** Soft bounces in a row for one address after which it is treated as unknown (a mailbox full for three sends is dead in practice). */
export const SOFT_BOUNCES_AS_HARD = 3;

/**
 * What the latest bounce for an address amounts to, given that address's earlier bounces
 * (oldest first, a successful delivery in between resets the count: pass only the bounces since).
 */
export function effectiveSeverity(previous: readonly BounceSeverity[], latest: BounceSeverity): BounceSeverity {
  if (latest === 'hard') return 'hard';
  let soft = 1;
  for (let i = previous.length - 1; i >= 0 && previous[i] === 'soft'; i--) soft++;
  return soft >= SOFT_BOUNCES_AS_HARD ? 'hard' : 'soft';
}
