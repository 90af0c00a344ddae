import crypto from 'node:crypto';

/**
 * Constant-time secret check: both sides are hashed to 32 bytes first, so the comparison never
 * exits early and leaks neither the secret nor its length.
 */
export function secretMatches(candidate: string | undefined, secret: string): boolean {
  const a = crypto
    .createHash('sha256')
    .update(candidate ?? '')
    .digest();
  const b = crypto.createHash('sha256').update(secret).digest();
  return crypto.timingSafeEqual(a, b) && candidate !== undefined;
}

/** `Authorization: Bearer <secret>` (Vercel Cron, cron-job.org header), then `?secret=`. */
export function isAuthorized(authorization: string | undefined, querySecret: string | undefined, secret: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(authorization?.trim() ?? '');
  const viaHeader = secretMatches(m ? m[1].trim() : undefined, secret);
  const viaQuery = secretMatches(querySecret, secret);
  return viaHeader || viaQuery;
}

export const FORBIDDEN_BODY = {
  success: false,
  error: 'forbidden',
  detail: 'Invalid secret. Provide Authorization: Bearer <CRON_SECRET> or ?secret=<CRON_SECRET>',
} as const;

export const MISCONFIGURED_SECRET_BODY = {
  success: false,
  error: 'misconfigured',
  detail: 'CRON_SECRET is not set',
} as const;

/**
 * A request that carries its credentials twice: two `Authorization` headers (Node keeps only the
 * first in `req.headers`, a proxy may keep the last) or `?secret=` repeated. Returns why, or null.
 */
export function ambiguousCredentials(rawHeaders: readonly string[], querySecret: string | string[] | undefined): string | null {
  let authorizations = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === 'authorization') authorizations++;
  if (authorizations > 1) return 'the Authorization header is sent more than once';
  if (Array.isArray(querySecret)) return 'the secret parameter is sent more than once';
  return null;
}

export const AMBIGUOUS_CREDENTIALS_BODY = {
  success: false,
  error: 'bad_request',
  detail: 'credentials sent more than once',
} as const;
