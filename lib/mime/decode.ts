/**
 * Repairs what mailparser would garble, before it parses (docs/inbox-sync.md, decoding):
 * - RFC 2047 encoded words with stray 8-bit bytes (`=?iso-8859-1?Q?Fr<F6>sche?=`) and encoded
 *   words in UTF-7 are decoded here and re-encoded as clean UTF-8 words;
 * - raw 8-bit header bytes are taken as UTF-8 when valid, else in the declared charset of the
 *   part (or of the message), else Windows-1252, and rewritten as UTF-8;
 * - UTF-7 bodies (old Outlook, some mobile clients; mailparser refuses UTF-7 on purpose) are
 *   decoded to UTF-8. What we store is text, so markup hidden in UTF-7 is only text here.
 * Works on the raw source as a latin1 string (one char per byte); returns null when nothing
 * needed repair (the common case, checked without walking the message).
 */
import { isAscii, isUtf8 } from 'node:buffer';
import iconv from 'iconv-lite';

const UTF7 = /^(?:(?:cs)?unicode-?1-?1-?)?utf-?7$/;

/** The iconv-lite name to decode `label` with, or null if unknown. US-ASCII and ISO-8859-1 are
 *  decoded as Windows-1252, as browsers and mail clients do (mislabelled € and curly quotes). */
export function decoderCharset(label: string | null | undefined): string | null {
  let l = (label ?? '').trim().toLowerCase().replace(/^"|"$/g, '').replace(/\*.*$/, '');
  if (!l) return null;
  if (UTF7.test(l)) return 'utf-7';
  if (/^(?:us-?ascii|ascii|iso[-_]?8859-1|iso_8859-1:1987|latin-?1|l1|cp819|ibm819)$/.test(l)) return 'windows-1252';
  if (l === 'ks_c_5601-1987') l = 'cp949';
  return iconv.encodingExists(l) ? l : null;
}

/** Bytes (as a latin1 string) decoded to text; invalid input never throws. */
function decodeBytes(bytes: Buffer, charset: string): string {
  return iconv.decode(bytes, charset);
}

const ENCODED_WORD = /=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=/g;

function wordBytes(encoding: string, payload: string): Buffer {
  if (encoding === 'b' || encoding === 'B') return Buffer.from(payload.replace(/[^A-Za-z0-9+/]/g, ''), 'base64');
  const s = payload.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  return Buffer.from(s, 'latin1'); // a stray 8-bit byte stays that byte, in the word's charset
}

const utf8Word = (text: string) => `=?UTF-8?B?${Buffer.from(text, 'utf8').toString('base64')}?=`;

/**
 * One header field (name: value, possibly folded; a latin1 string of its bytes) made safe:
 * encoded words that mailparser would garble re-encoded as UTF-8, raw 8-bit text as UTF-8 bytes.
 */
export function repairHeaderField(field: string, fallbackCharset: string): string {
  let out = field.replace(ENCODED_WORD, (word, label: string, enc: string, payload: string) => {
    const charset = decoderCharset(label);
    const stray8bit = /[\x80-\xff]/.test(payload);
    if (!stray8bit && charset !== 'utf-7') return word; // mailparser decodes these well
    return utf8Word(decodeBytes(wordBytes(enc, payload), charset ?? (stray8bit ? fallbackCharset : 'utf-8')));
  });
  if (/[\x80-\xff]/.test(out)) {
    const bytes = Buffer.from(out, 'latin1');
    if (!isUtf8(bytes)) out = Buffer.from(decodeBytes(bytes, fallbackCharset), 'utf8').toString('latin1');
  }
  return out;
}

type Block = { fields: string[]; contentType: string; charset: string | null; boundary: string | null; cte: string };

function parseBlock(text: string): Block {
  const fields = text.split(/\r?\n(?![ \t])/).filter((f) => f.length > 0);
  let contentType = 'text/plain';
  let charset: string | null = null;
  let boundary: string | null = null;
  let cte = '7bit';
  for (const f of fields) {
    const colon = f.indexOf(':');
    if (colon <= 0) continue;
    const name = f.slice(0, colon).trim().toLowerCase();
    const value = f.slice(colon + 1).replace(/\r?\n[ \t]+/g, ' ');
    if (name === 'content-type') {
      contentType = (/^\s*([^;\s]+)/.exec(value)?.[1] ?? 'text/plain').toLowerCase();
      charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(value)?.[1] ?? null;
      const b = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(value);
      boundary = b ? (b[1] ?? b[2]) : null;
    } else if (name === 'content-transfer-encoding') cte = value.trim().toLowerCase();
  }
  return { fields, contentType, charset, boundary, cte };
}

function decodeTransfer(body: string, cte: string): Buffer {
  if (cte === 'base64') return Buffer.from(body.replace(/[^A-Za-z0-9+/]/g, ''), 'base64');
  if (cte === 'quoted-printable') {
    return Buffer.from(
      body.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
      'latin1',
    );
  }
  return Buffer.from(body, 'latin1');
}

type Edit = { start: number; end: number; text: string };

/** The block's header fields repaired; the UTF-7 part's headers rewritten to UTF-8 / 8bit. */
function repairBlock(b: Block, fallback: string, utf7Body: boolean): string | null {
  let changed = false;
  const fields = b.fields.map((f) => {
    let r = /[\x80-\xff]|=\?/.test(f) ? repairHeaderField(f, fallback) : f;
    if (utf7Body) {
      const name = r.slice(0, r.indexOf(':')).trim().toLowerCase();
      if (name === 'content-type') r = r.replace(/(;\s*charset\s*=\s*)"?[^";\s]+"?/i, '$1utf-8');
      if (name === 'content-transfer-encoding') r = 'Content-Transfer-Encoding: 8bit';
    }
    if (r !== f) changed = true;
    return r;
  });
  if (utf7Body && !b.fields.some((f) => /^content-transfer-encoding\s*:/i.test(f))) {
    fields.push('Content-Transfer-Encoding: 8bit');
    changed = true;
  }
  return changed ? `${fields.join('\r\n')}\r\n` : null;
}

/** The source with its headers and UTF-7 bodies repaired, or null when it needs nothing. */
export function repairSource(source: Buffer): Buffer | null {
  // most mail is 7-bit without UTF-7: known in native code, without copying the source to a string
  if (isAscii(source) && !['tf-7', 'TF-7', 'tf7', 'TF7'].some((x) => source.includes(x))) return null;
  const s = source.toString('latin1');
  if (!/[\x80-\xff]|charset\s*=\s*"?[\w-]*utf-?7|=\?[\w-]*utf-?7/i.test(s)) return null;
  const edits: Edit[] = [];
  // the message's declared charset: the top-level one, else the first text part's
  const firstCharset = decoderCharset(/;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(s)?.[1]);
  const messageFallback = firstCharset && firstCharset !== 'utf-8' && firstCharset !== 'utf-7' ? firstCharset : 'windows-1252';
  const boundaries = new Set<string>();

  // returns the index after the block's blank line; records the edits of the block (and of a UTF-7 body after it)
  const handleBlock = (start: number, isRoot: boolean): { bodyStart: number; block: Block } => {
    // the block ends at its first empty line
    let end = s.length;
    let bodyStart = s.length;
    for (let i = start; i < s.length;) {
      if (s[i] === '\n') {
        end = i;
        bodyStart = i + 1;
        break;
      }
      if (s[i] === '\r' && s[i + 1] === '\n') {
        end = i;
        bodyStart = i + 2;
        break;
      }
      const e = s.indexOf('\n', i);
      if (e === -1) break;
      i = e + 1;
    }
    const block = parseBlock(s.slice(start, end));
    if (block.boundary) boundaries.add(block.boundary);
    const own = decoderCharset(block.charset);
    const fallback = own && own !== 'utf-8' && own !== 'utf-7' ? own : messageFallback;
    const utf7Body = own === 'utf-7' && block.contentType.startsWith('text/');
    const repaired = repairBlock(block, fallback, utf7Body);
    if (repaired !== null) edits.push({ start, end, text: repaired });
    if (utf7Body) {
      const bodyEnd = isRoot ? s.length : nextDelimiter(bodyStart);
      const text = decodeBytes(decodeTransfer(s.slice(bodyStart, bodyEnd), block.cte), 'utf-7');
      edits.push({ start: bodyStart, end: bodyEnd, text: Buffer.from(text, 'utf8').toString('latin1') });
    }
    return { bodyStart, block };
  };
  // the start of the next delimiter line of a known boundary (its preceding line break belongs to it)
  const isDelimiterAt = (i: number) => {
    if (s.charCodeAt(i) !== 45 || s.charCodeAt(i + 1) !== 45) return null;
    let e = s.indexOf('\n', i);
    if (e === -1) e = s.length;
    const line = s.slice(i + 2, e).replace(/\s+$/, '');
    const closing = line.endsWith('--') && boundaries.has(line.slice(0, -2));
    if (closing) return { closing: true, next: e + 1 };
    return boundaries.has(line) ? { closing: false, next: e + 1 } : null;
  };
  const nextDelimiter = (from: number) => {
    for (let i = from; i < s.length;) {
      if (isDelimiterAt(i)) return Math.max(from, s[i - 1] === '\n' ? (s[i - 2] === '\r' ? i - 2 : i - 1) : i);
      const e = s.indexOf('\n', i);
      if (e === -1) break;
      i = e + 1;
    }
    return s.length;
  };

  const root = handleBlock(0, true);
  if (root.block.boundary) {
    for (let i = root.bodyStart; i < s.length;) {
      const d = isDelimiterAt(i);
      if (d && !d.closing && d.next <= s.length) {
        const part = handleBlock(d.next, false);
        i = part.bodyStart > d.next ? part.bodyStart : d.next;
        if (part.bodyStart >= s.length) break;
        continue;
      }
      const e = s.indexOf('\n', i);
      if (e === -1) break;
      i = e + 1;
    }
  }
  if (!edits.length) return null;
  edits.sort((a, b) => a.start - b.start);
  let out = '';
  let at = 0;
  for (const e of edits) {
    if (e.start < at) continue; // overlapping (malformed input): keep the first
    out += s.slice(at, e.start) + e.text;
    at = e.end;
  }
  out += s.slice(at);
  return Buffer.from(out, 'latin1');
}
