import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real OAuth 2.0 authorization server on a free loopback port, for the tests of OAuth mailboxes:
 * - `POST /token`: the refresh-token grant (RFC 6749 §6). Like Microsoft, it rotates refresh
 *   tokens, and strictly: the old refresh token stops working once a new one is issued.
 * - `POST /introspect`: RFC 7662 introspection, what Dovecot's oauth2 passdb and the SMTP sink ask.
 * Grants are made with `grant(user)` (what the web app gets after consent) and revoked with `revoke(user)`.
 */
export type OAuthProviderOptions = { clientId?: string; clientSecret?: string; accessTtlSec?: number };

type Grant = { user: string; refreshToken: string; revoked: boolean; scope: string };
type Access = { grant: Grant; expiresAt: number };

export async function startOAuthProvider(opts: OAuthProviderOptions = {}) {
  const clientId = opts.clientId ?? 'lokario-test-client';
  const clientSecret = opts.clientSecret ?? 'lokario-test-secret';
  const accessTtlSec = opts.accessTtlSec ?? 3600;
  const byRefresh = new Map<string, Grant>();
  const byAccess = new Map<string, Access>();
  const failures: { status: number; body: unknown }[] = [];
  const token = (kind: string) => `${kind}-${randomBytes(18).toString('base64url')}`;
  const counters = { refreshes: 0, refreshRequests: 0, introspections: 0, refused: 0 };
  let delayMs = 0;
  /** Every refresh request's form (client id, scope…), refresh token masked. */
  const refreshLog: Record<string, string>[] = [];

  const issueAccess = (grant: Grant, ttlSec = accessTtlSec) => {
    const accessToken = token('at');
    byAccess.set(accessToken, { grant, expiresAt: Date.now() + ttlSec * 1000 });
    return accessToken;
  };

  const readForm = (req: http.IncomingMessage) =>
    new Promise<URLSearchParams>((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
      req.on('error', reject);
    });
  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const server = http.createServer(async (req, res) => {
    const form = await readForm(req);
    if (req.method === 'POST' && req.url === '/introspect') {
      counters.introspections++;
      const a = byAccess.get(form.get('token') ?? '');
      const active = !!a && !a.grant.revoked && a.expiresAt > Date.now();
      send(
        res,
        200,
        active ? { active: true, username: a!.grant.user, scope: a!.grant.scope, exp: Math.floor(a!.expiresAt / 1000) } : { active: false },
      );
      return;
    }
    if (req.method === 'POST' && req.url === '/token') {
      counters.refreshRequests++;
      refreshLog.push({ ...Object.fromEntries(form), refresh_token: '…' });
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      const fail = failures.shift();
      if (fail) {
        send(res, fail.status, fail.body);
        return;
      }
      if (form.get('client_id') !== clientId || form.get('client_secret') !== clientSecret) {
        send(res, 401, { error: 'invalid_client', error_description: 'unknown client or bad secret' });
        return;
      }
      if (form.get('grant_type') !== 'refresh_token') {
        send(res, 400, { error: 'unsupported_grant_type' });
        return;
      }
      const grant = byRefresh.get(form.get('refresh_token') ?? '');
      if (!grant || grant.revoked) {
        counters.refused++;
        send(res, 400, { error: 'invalid_grant', error_description: 'AADSTS70000: the refresh token was revoked or has expired.' });
        return;
      }
      counters.refreshes++;
      byRefresh.delete(grant.refreshToken); // strict rotation
      grant.refreshToken = token('rt');
      byRefresh.set(grant.refreshToken, grant);
      send(res, 200, {
        token_type: 'Bearer',
        access_token: issueAccess(grant),
        refresh_token: grant.refreshToken,
        expires_in: accessTtlSec,
        scope: grant.scope,
      });
      return;
    }
    send(res, 404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    clientId,
    clientSecret,
    counters,
    refreshLog,
    tokenUrl: `${base}/token`,
    introspectionUrl: `${base}/introspect`,
    /** The consent: a new grant for `user`, as the web app receives it. */
    grant(user: string, o: { accessTtlSec?: number; scope?: string } = {}) {
      const grant: Grant = {
        user,
        refreshToken: token('rt'),
        revoked: false,
        scope: o.scope ?? 'https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access',
      };
      byRefresh.set(grant.refreshToken, grant);
      const ttl = o.accessTtlSec ?? accessTtlSec;
      return { refreshToken: grant.refreshToken, accessToken: issueAccess(grant, ttl), expiresInSec: ttl, scope: grant.scope };
    },
    /** The user revoked the consent (or an admin did): refresh and access tokens stop working. */
    revoke(user: string) {
      for (const g of byRefresh.values()) if (g.user === user) g.revoked = true;
    },
    /** Is this access token valid right now (what a mail server would be told)? */
    isActive(accessToken: string, user?: string) {
      const a = byAccess.get(accessToken);
      return !!a && !a.grant.revoked && a.expiresAt > Date.now() && (user === undefined || a.grant.user === user);
    },
    /** The next `count` token requests answer `status` (503: a provider outage). */
    failNext(count: number, status: number, body: unknown = { error: 'temporarily_unavailable' }) {
      for (let i = 0; i < count; i++) failures.push({ status, body });
    },
    /** Every token request waits this long first (widens the window of concurrency tests). */
    setDelay(ms: number) {
      delayMs = ms;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export type OAuthProviderServer = Awaited<ReturnType<typeof startOAuthProvider>>;
