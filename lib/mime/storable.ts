/** Values of a parsed message made storable: dates, text and attachment names Postgres and browsers accept. Pure. */

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
  s = s
    .replace(/[<>:"|?*]/g, '_')
    .replace(/\s+/g, ' ')
    .trim();
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

/** Text Postgres accepts: no NUL characters, valid UTF-16 (lone surrogates removed). */
export function storableText(s: string): string {
  return s.replace(/\u0000/g, '').replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}
