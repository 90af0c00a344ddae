/**
 * The refresh-token grant (RFC 6749 §6) at a provider's token endpoint, and the pure rules around
 * it: when a token needs refreshing, and what an answer means (new tokens, a grant that is gone
 * for good, or a provider that is only having a bad minute).
 */
import type { TokenEndpoint } from './providers.js';

/** A token expiring within this margin is refreshed before a sync or a send: a long sync or a
 *  slow SMTP dialogue must not outlive it, and clocks of the provider and of Postgres may differ. */
export const REFRESH_MARGIN_MS = 5 * 60_000;
/** Assumed lifetime when a provider omits `expires_in` (both Microsoft and Google issue 1 h). */
export const DEFAULT_EXPIRES_IN_SEC = 3600;

/** True when there is no usable access token for the next REFRESH_MARGIN_MS. */
export function needsRefresh(accessToken: string | null, expiresAt: Date | null, now: Date, marginMs = REFRESH_MARGIN_MS): boolean {
  if (!accessToken || !expiresAt) return true;
  return expiresAt.getTime() - now.getTime() <= marginMs;
}

export type IssuedTokens = { accessToken: string; refreshToken: string | null; expiresInSec: number; scope: string | null };

export type RefreshOutcome =
  | { kind: 'issued'; tokens: IssuedTokens }
  /** The grant is gone (revoked consent, expired refresh token, password change): the user must reconnect. */
  | { kind: 'revoked'; reason: string }
  /** 5xx, 429, timeout, network: back off and try again later; the grant is intact. */
  | { kind: 'transient'; reason: string }
  /** Our side is wrong (unknown client, bad secret, malformed request): an operator must act. */
  | { kind: 'client_error'; reason: string };

// error codes that mean "this grant will never work again" (RFC 6749 §5.2, and Microsoft's
// interaction_required / consent_required for revoked consent and conditional-access changes)
const GRANT_GONE = new Set(['invalid_grant', 'interaction_required', 'consent_required', 'login_required']);

/** A provider's error text, shortened; never echoes anything but the error fields. */
function reasonOf(body: Record<string, unknown>, status: number): string {
  const code = typeof body.error === 'string' ? body.error : `HTTP ${status}`;
  const description = typeof body.error_description === 'string' ? body.error_description.split(/\r?\n/)[0].slice(0, 200) : '';
  return description ? `${code}: ${description}` : code;
}

/** What a token endpoint's answer means. Pure: status code and parsed JSON body (or null). */
export function classifyTokenResponse(status: number, body: unknown): RefreshOutcome {
  const b = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
  if (status >= 200 && status < 300) {
    if (typeof b.access_token !== 'string' || !b.access_token) return { kind: 'transient', reason: `HTTP ${status} without access_token` };
    const expires = Number(b.expires_in);
    return {
      kind: 'issued',
      tokens: {
        accessToken: b.access_token,
        // Microsoft rotates the refresh token; Google keeps the old one and sends none
        refreshToken: typeof b.refresh_token === 'string' && b.refresh_token ? b.refresh_token : null,
        expiresInSec: Number.isFinite(expires) && expires > 0 ? expires : DEFAULT_EXPIRES_IN_SEC,
        scope: typeof b.scope === 'string' ? b.scope : null,
      },
    };
  }
  if (status === 429 || status >= 500) return { kind: 'transient', reason: reasonOf(b, status) };
  if (typeof b.error === 'string' && GRANT_GONE.has(b.error)) return { kind: 'revoked', reason: reasonOf(b, status) };
  return { kind: 'client_error', reason: reasonOf(b, status) };
}

export type RefreshRequest = {
  endpoint: TokenEndpoint;
  refreshToken: string;
  scopes: string[] | null;
  timeoutMs: number;
  fetch?: typeof fetch;
};

/** POSTs the refresh-token grant; never throws (a network failure is `transient`). */
export async function requestRefresh(req: RefreshRequest): Promise<RefreshOutcome> {
  const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: req.refreshToken, client_id: req.endpoint.clientId });
  if (req.endpoint.clientSecret) form.set('client_secret', req.endpoint.clientSecret);
  if (req.scopes?.length) form.set('scope', req.scopes.join(' '));
  let res: Response;
  try {
    res = await (req.fetch ?? fetch)(req.endpoint.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
      signal: AbortSignal.timeout(req.timeoutMs),
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const why =
      e.name === 'TimeoutError' || e.name === 'AbortError'
        ? `no answer within ${req.timeoutMs} ms`
        : `${e.cause?.code ?? e.name}: ${e.message}`;
    return { kind: 'transient', reason: `token endpoint unreachable (${why})` };
  }
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    // a proxy's HTML error page: the status decides
  }
  return classifyTokenResponse(res.status, body);
}
