import crypto from 'node:crypto';
import { secretMatches } from '../cron/auth.js';

/**
 * The console's sign-in (docs: README "Operating Lokario's jobs"). The cookie is
 * `<payload>.<HMAC>`; the key derives from the password, so changing CONSOLE_PASSWORD (or
 * CRON_SECRET) signs every session out. The CSRF token is an HMAC of the session's nonce.
 */

export const SESSION_COOKIE = 'lokario_console';
/** A working day: an operator signs in once per shift. */
export const SESSION_TTL_MS = 12 * 3600_000;
export const MAX_ACTOR_LENGTH = 60;

export type Session = { actor: string; exp: number; nonce: string };

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64url');

function key(password: string, purpose: string): Buffer {
  return crypto.createHmac('sha256', password).update(`lokario-console:${purpose}`).digest();
}

function mac(password: string, purpose: string, data: string): string {
  return crypto.createHmac('sha256', key(password, purpose)).update(data).digest('base64url');
}

function equal(a: string, b: string): boolean {
  const x = crypto.createHash('sha256').update(a).digest();
  const y = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(x, y);
}

export function checkPassword(candidate: string, password: string): boolean {
  return secretMatches(candidate, password);
}

/** A name for the action log: printable, short; never the password. */
export function cleanActor(raw: string): string {
  return (
    raw
      .replace(/[^\p{L}\p{N} ._@-]/gu, '')
      .trim()
      .slice(0, MAX_ACTOR_LENGTH) || 'opérateur'
  );
}

export function signSession(password: string, actor: string, now: Date): { value: string; session: Session } {
  const session: Session = {
    actor: cleanActor(actor),
    exp: now.getTime() + SESSION_TTL_MS,
    nonce: crypto.randomBytes(16).toString('base64url'),
  };
  const payload = b64(JSON.stringify(session));
  return { value: `${payload}.${mac(password, 'session', payload)}`, session };
}

export function verifySession(password: string, value: string | undefined, now: Date): Session | null {
  if (!value) return null;
  const dot = value.lastIndexOf('.');
  if (dot <= 0) return null;
  const payload = value.slice(0, dot);
  if (!equal(value.slice(dot + 1), mac(password, 'session', payload))) return null;
  try {
    const s = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Session;
    if (typeof s.actor !== 'string' || typeof s.nonce !== 'string' || typeof s.exp !== 'number') return null;
    return s.exp > now.getTime() ? s : null;
  } catch {
    return null;
  }
}

export function csrfToken(password: string, session: Session): string {
  return mac(password, 'csrf', session.nonce);
}

export function csrfValid(password: string, session: Session, token: string | undefined): boolean {
  return typeof token === 'string' && token.length > 0 && equal(token, csrfToken(password, session));
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** `Secure` everywhere but a loopback host (plain http://localhost in development). */
export function isLoopbackHost(host: string | undefined): boolean {
  const name = (host ?? '')
    .replace(/:\d+$/, '')
    .replace(/^\[|\]$/g, '')
    .toLowerCase();
  return name === 'localhost' || name === '127.0.0.1' || name === '::1';
}

export function sessionCookie(value: string, host: string | undefined, maxAgeSec = SESSION_TTL_MS / 1000): string {
  return [
    `${SESSION_COOKIE}=${value}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${maxAgeSec}`,
    ...(isLoopbackHost(host) ? [] : ['Secure']),
  ].join('; ');
}

export function clearedCookie(host: string | undefined): string {
  return sessionCookie('', host, 0);
}

/**
 * Failed sign-ins per client address, in memory: each failure doubles the wait before the answer
 * (0.5 s, 1 s, 2 s… up to 8 s) for FAILURE_WINDOW_MS. Per instance only, but guessing a 32-byte
 * secret is hopeless anyway: the delay stops a script from hammering, the secret's length does the rest.
 */
export const FAILURE_WINDOW_MS = 15 * 60_000;
export const FIRST_DELAY_MS = 500;
export const MAX_DELAY_MS = 8_000;
const failures = new Map<string, { count: number; last: number }>();

export function failureDelayMs(client: string, now: number): number {
  const f = failures.get(client);
  const count = f && now - f.last < FAILURE_WINDOW_MS ? f.count + 1 : 1;
  failures.set(client, { count, last: now });
  if (failures.size > 10_000) failures.clear(); // bounded memory under a spray of addresses
  return Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (count - 1));
}

export function forgetFailures(client: string): void {
  failures.delete(client);
}
