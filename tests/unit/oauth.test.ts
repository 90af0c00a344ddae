import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config.js';
import { redactText } from '../../lib/log.js';
import { planSender } from '../../lib/jobs/followups/transport.js';
import { classifyTokenResponse, needsRefresh, REFRESH_MARGIN_MS } from '../../lib/oauth/refresh.js';
import { PROVIDER_INFO, tokenEndpointOf } from '../../lib/oauth/providers.js';
import { needsReauthError, needsReauthNotification } from '../../lib/oauth/messages.js';

const NOW = new Date('2026-03-11T10:00:00Z');
const at = (ms: number) => new Date(NOW.getTime() + ms);

describe('OAuth: when to refresh', () => {
  it('refreshes a token missing, expired, or expiring within the 5-minute margin; keeps one valid longer', () => {
    expect(REFRESH_MARGIN_MS).toBe(5 * 60_000);
    expect(needsRefresh(null, at(3_600_000), NOW)).toBe(true);
    expect(needsRefresh('tok', null, NOW)).toBe(true);
    expect(needsRefresh('tok', at(-1), NOW)).toBe(true);
    expect(needsRefresh('tok', at(REFRESH_MARGIN_MS), NOW)).toBe(true);
    expect(needsRefresh('tok', at(REFRESH_MARGIN_MS + 1_000), NOW)).toBe(false);
  });
});

describe('OAuth: what a token endpoint answer means', () => {
  it('200 with tokens: issued (rotated refresh token kept, default lifetime when expires_in is missing)', () => {
    expect(classifyTokenResponse(200, { access_token: 'a', refresh_token: 'r2', expires_in: 3599, scope: 's' })).toEqual({
      kind: 'issued',
      tokens: { accessToken: 'a', refreshToken: 'r2', expiresInSec: 3599, scope: 's' },
    });
    expect(classifyTokenResponse(200, { access_token: 'a' })).toEqual({
      kind: 'issued',
      tokens: { accessToken: 'a', refreshToken: null, expiresInSec: 3600, scope: null },
    });
  });
  it("invalid_grant and Microsoft's interaction/consent errors: the grant is gone", () => {
    expect(classifyTokenResponse(400, { error: 'invalid_grant', error_description: 'AADSTS50173: revoked\nTrace ID: x' })).toEqual({
      kind: 'revoked',
      reason: 'invalid_grant: AADSTS50173: revoked',
    });
    expect(classifyTokenResponse(400, { error: 'interaction_required' }).kind).toBe('revoked');
    expect(classifyTokenResponse(400, { error: 'consent_required' }).kind).toBe('revoked');
  });
  it("5xx, 429 and a 200 without a token are transient; other 4xx are our client's problem", () => {
    expect(classifyTokenResponse(503, null)).toEqual({ kind: 'transient', reason: 'HTTP 503' });
    expect(classifyTokenResponse(429, { error: 'too_many_requests' }).kind).toBe('transient');
    expect(classifyTokenResponse(200, {}).kind).toBe('transient');
    expect(classifyTokenResponse(401, { error: 'invalid_client' })).toEqual({ kind: 'client_error', reason: 'invalid_client' });
    expect(classifyTokenResponse(400, { error: 'invalid_request' }).kind).toBe('client_error');
  });
});

describe('OAuth: providers and configuration', () => {
  const base = { NODE_ENV: 'test' };
  it('Microsoft: tenant in the default token URL, override for tests; the consent scopes', () => {
    const c = parseConfig({
      ...base,
      OAUTH_MICROSOFT_CLIENT_ID: 'id',
      OAUTH_MICROSOFT_CLIENT_SECRET: 's',
      OAUTH_MICROSOFT_TENANT: 'contoso.onmicrosoft.com',
    });
    expect(tokenEndpointOf('microsoft', c)).toEqual({
      url: 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token',
      clientId: 'id',
      clientSecret: 's',
    });
    expect(tokenEndpointOf('microsoft', parseConfig({ ...base, OAUTH_MICROSOFT_CLIENT_ID: 'id' }))).toMatchObject({
      url: 'https://login.microsoftonline.com/common/oauth2/v2.0/token',
    });
    expect(
      tokenEndpointOf(
        'microsoft',
        parseConfig({ ...base, OAUTH_MICROSOFT_CLIENT_ID: 'id', OAUTH_MICROSOFT_TOKEN_URL: 'http://127.0.0.1:9/token' }),
      ),
    ).toMatchObject({ url: 'http://127.0.0.1:9/token' });
    expect(PROVIDER_INFO.microsoft.scopes).toEqual([
      'https://outlook.office.com/IMAP.AccessAsUser.All',
      'https://outlook.office.com/SMTP.Send',
      'offline_access',
    ]);
    expect(PROVIDER_INFO.microsoft.imap).toEqual({ host: 'outlook.office365.com', port: 993, useSsl: true });
  });
  it('Google and generic; a missing client id is named', () => {
    expect(tokenEndpointOf('google', parseConfig({ ...base, OAUTH_GOOGLE_CLIENT_ID: 'g' }))).toMatchObject({
      url: 'https://oauth2.googleapis.com/token',
      clientId: 'g',
    });
    expect(PROVIDER_INFO.google.scopes).toEqual(['https://mail.google.com/']);
    expect(tokenEndpointOf('google', parseConfig(base))).toEqual({ missing: 'OAUTH_GOOGLE_CLIENT_ID' });
    expect(tokenEndpointOf('generic', parseConfig(base))).toEqual({ missing: 'OAUTH_GENERIC_TOKEN_URL' });
    expect(() => parseConfig({ ...base, OAUTH_MICROSOFT_TOKEN_URL: 'not a url' })).toThrow(/OAUTH_MICROSOFT_TOKEN_URL/);
    expect(() => parseConfig({ ...base, OAUTH_MICROSOFT_TENANT: 'a/b' })).toThrow(/OAUTH_MICROSOFT_TENANT/);
  });
  it('French texts name the provider', () => {
    expect(needsReauthError('microsoft', 'invalid_grant')).toContain('reconnectez votre boîte Microsoft');
    expect(needsReauthNotification('google', 'Boîte', 'a@b.fr')).toContain('reconnectez votre boîte Google');
  });
});

describe('OAuth: the follow-up sender of an OAuth mailbox', () => {
  const integration = {
    id: 7,
    email_address: 'f@a.example',
    email_password: null,
    smtp_server: 'smtp.office365.com',
    smtp_port: 587,
    smtp_use_ssl: false,
    use_ssl: true,
    auth_method: 'oauth2',
    oauth_provider: 'microsoft',
    last_sync_status: 'success',
  };
  it('is the mailbox (no password needed), flagged when the grant needs reauthorization', () => {
    expect(planSender(integration, 'Lokario <noreply@lokario.fr>', null)).toMatchObject({
      kind: 'mailbox',
      auth: 'oauth2',
      host: 'smtp.office365.com',
      port: 587,
      secure: false,
      needsReauth: false,
    });
    expect(planSender({ ...integration, last_sync_status: 'needs_reauth' }, 'Lokario <noreply@lokario.fr>', null)).toMatchObject({
      kind: 'mailbox',
      needsReauth: true,
    });
    // a password mailbox without a password still falls back to the platform, as before
    expect(planSender({ ...integration, auth_method: 'password' }, 'Lokario <noreply@lokario.fr>', null).kind).toBe('platform');
  });
});

describe('OAuth: tokens never reach a log line', () => {
  it('redacts token fields of forms and JSON, and JWTs', () => {
    const jwt = 'eyJ0eXAiOiJKV1QiLCJhbGciOi.eyJhdWQiOiJodHRwczovL291dGxvb2s.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
    const out = redactText(
      `grant_type=refresh_token&refresh_token=0.AXoA-secret-rt&client_id=x {"access_token":"at-secret","expires_in":3600} token ${jwt}`,
    );
    expect(out).not.toMatch(/0\.AXoA-secret-rt|at-secret|eyJ0eXAi/);
    expect(out).toContain('client_id=x');
    expect(out).toContain('"expires_in":3600');
  });
});
