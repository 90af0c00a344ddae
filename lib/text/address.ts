import addressparser from 'nodemailer/lib/addressparser';

/**
 * Every recipient we put in To / Cc / Reply-To (and every From address we take from the
 * database) is ONE RFC 5322 addr-spec: `local@domain`, nothing else. The raw value is read by
 * nodemailer's own address parser (the one that would otherwise read it as a list when sending)
 * and must come back as exactly one mailbox, without a display name, a group or a comment, and
 * equal to the input: so `x@t.test\r\nBcc: victim@evil.test`, `a@x, b@evil` or `a@x;Bcc: b@evil`
 * can never reach a second address. See docs/security.md.
 */

export type AddressCheck = { ok: true; address: string } | { ok: false; reason: AddressProblem };

export type AddressProblem = 'empty' | 'control_characters' | 'not_one_address' | 'display_name' | 'syntax' | 'too_long';

/** RFC 5321: 64 octets for the local part, 254 for the whole path. */
const MAX_LOCAL = 64;
const MAX_ADDRESS = 254;

// dot-atom local part (RFC 5322 atext; UTF-8 letters allowed, RFC 6531); quoted local parts are
// refused: legal, but never needed by a real client and a classic smuggling vector
const LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uFFFF-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uFFFF-]+)*$/;
// a host name of two labels or more (no address literal); IDN labels are encoded by nodemailer
const LABEL = /^(?!-)[A-Za-z0-9\u0080-\uFFFF-]{1,63}(?<!-)$/;

// eslint-disable-next-line no-control-regex -- what we look for are control characters
const CONTROL = /[\u0000-\u001F\u007F\u2028\u2029]/;

export const ADDRESS_PROBLEM_TEXT: Record<AddressProblem, string> = {
  empty: 'empty',
  control_characters: 'contains a line break or a control character',
  not_one_address: 'is not exactly one address (a list, a group or extra text)',
  display_name: 'contains a display name or a comment',
  syntax: 'is not a valid addr-spec (local@domain)',
  too_long: 'is longer than SMTP allows',
};

/**
 * Verdicts by raw value: a run checks the same addresses several times (each client when planned
 * and again when sent, the same sender for every email), and the parser is the costliest step
 * of planning an email. Bounded: cleared when full.
 */
const verdicts = new Map<string, AddressCheck>();
const VERDICTS_CAP = 10_000;

/** One addr-spec, trimmed of surrounding spaces; anything else is refused with a reason. */
export function checkSingleAddress(raw: unknown): AddressCheck {
  if (typeof raw !== 'string') return { ok: false, reason: 'empty' };
  let verdict = verdicts.get(raw);
  if (!verdict) {
    if (verdicts.size >= VERDICTS_CAP) verdicts.clear();
    verdict = parseSingleAddress(raw);
    verdicts.set(raw, Object.freeze(verdict));
  }
  return verdict;
}

function parseSingleAddress(raw: string): AddressCheck {
  if (raw.trim() === '') return { ok: false, reason: 'empty' };
  if (CONTROL.test(raw)) return { ok: false, reason: 'control_characters' };
  const value = raw.trim();
  let parsed: ReturnType<typeof addressparser>;
  try {
    parsed = addressparser(value);
  } catch {
    return { ok: false, reason: 'syntax' };
  }
  if (parsed.length !== 1 || 'group' in parsed[0]) return { ok: false, reason: 'not_one_address' };
  const entry = parsed[0] as { name: string; address: string };
  if (entry.name) return { ok: false, reason: entry.address ? 'display_name' : 'syntax' };
  // the parser drops spaces, brackets and comments; the input itself must be the address
  if (entry.address !== value) return { ok: false, reason: /[<>(),;:"\s]/.test(value) ? 'not_one_address' : 'syntax' };
  const at = value.lastIndexOf('@');
  if (at <= 0 || value.indexOf('@') !== at) return { ok: false, reason: 'syntax' };
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  if (local.length > MAX_LOCAL || value.length > MAX_ADDRESS) return { ok: false, reason: 'too_long' };
  const labels = domain.split('.');
  if (!LOCAL.test(local) || labels.length < 2 || !labels.every((l) => LABEL.test(l))) return { ok: false, reason: 'syntax' };
  return { ok: true, address: value };
}

/** The operator text of an item error: `client email "…" is not exactly one address (…)`. */
export function describeAddressProblem(what: string, raw: unknown, reason: AddressProblem): string {
  const shown = typeof raw === 'string' ? JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}…` : raw) : String(raw);
  return `${what} ${shown} ${ADDRESS_PROBLEM_TEXT[reason]}`;
}

/**
 * A sender written by an operator (`MAIL_FROM`): `Name <addr>` or a bare address, exactly one
 * mailbox whose address passes checkSingleAddress, no line break. Returns the reason otherwise.
 */
export function checkMailbox(raw: string): { ok: true; address: string; name: string } | { ok: false; reason: AddressProblem } {
  if (CONTROL.test(raw)) return { ok: false, reason: 'control_characters' };
  let parsed: ReturnType<typeof addressparser>;
  try {
    parsed = addressparser(raw.trim());
  } catch {
    return { ok: false, reason: 'syntax' };
  }
  if (parsed.length !== 1 || 'group' in parsed[0]) return { ok: false, reason: 'not_one_address' };
  const entry = parsed[0] as { name: string; address: string };
  const c = checkSingleAddress(entry.address);
  return c.ok ? { ok: true, address: c.address, name: entry.name } : c;
}

/** The address part of `Name <addr>` or a bare address. */
export function addressOf(from: string): string {
  const m = /<([^>]+)>\s*$/.exec(from.trim());
  return (m ? m[1] : from).trim();
}

/** `"Name" <addr>`, quoted so that a comma or a quote in a company name cannot break the header. */
export function formatFrom(name: string, address: string): string {
  const clean = name.replace(/[\r\n]+/g, ' ').trim() || address;
  return `"${clean.replace(/(["\\])/g, '\\$1')}" <${address}>`;
}
