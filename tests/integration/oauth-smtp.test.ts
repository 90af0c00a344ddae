import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describePg } from '../helpers/services.js';
import { testRuntime } from '../helpers/runtime.js';
import { startSmtpSink } from '../../devtools/smtp.js';
import { startOAuthProvider, type OAuthProviderServer } from '../helpers/oauth-provider.js';
import { grantRow, oauthEnv, reauthNotifications } from '../helpers/oauth-fixtures.js';
import { MASTER_KEY } from '../helpers/inbox-fixtures.js';
import { runJob } from '../../lib/cron/run.js';
import { followupsJob } from '../../lib/jobs/followups/index.js';
import { encryptSecret } from '../../lib/crypto/fernet.js';
import { addMailbox, history, seedCompany, seedFollowup, seedInvoice, wipe } from './followups-fixtures.js';

const SECRET = 'x'.repeat(24);
const NOW = new Date('2026-03-11T10:00:00Z');
const MINUTE = 60_000;
const MAILBOX = 'facturation@atelier.example';

describePg('followups from an OAuth mailbox: SMTP XOAUTH2 (smtp-server, local token endpoint, real PostgreSQL)', () => {
  let t: TestDatabase;
  let p: OAuthProviderServer;
  let platform: Awaited<ReturnType<typeof startSmtpSink>>;
  let mailbox: Awaited<ReturnType<typeof startSmtpSink>>;
  let previousTls: string | undefined;
  const issued: string[] = [];
  const allLogs: string[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('oauthsmtp');
    p = await startOAuthProvider();
    platform = await startSmtpSink();
    // the mailbox's own server: STARTTLS (a mailbox transport never authenticates in clear), XOAUTH2 checked at the provider
    mailbox = await startSmtpSink({ starttls: true, xoauth2: (user, token) => p.isActive(token, user) });
  });
  afterAll(async () => {
    await mailbox?.close();
    await platform?.close();
    await p?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    await wipe(t.handle.db);
    platform.received.length = 0;
    mailbox.received.length = 0;
    previousTls = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // smtp-server's built-in certificate is self-signed
  });
  afterEach(() => {
    if (previousTls === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    else process.env.NODE_TLS_REJECT_UNAUTHORIZED = previousTls;
  });

  const run = async (now: Date) => {
    const { rt, logs } = testRuntime(
      { CRON_SECRET: SECRET, SMTP_URL: platform.url, ENCRYPTION_MASTER_KEY: MASTER_KEY, ...oauthEnv(p) },
      t.handle,
    );
    const res = await runJob(followupsJob, 'http', { dryRun: false, scope: {}, nowOverride: now }, rt);
    allLogs.push(...logs);
    allLogs.push(JSON.stringify(res.body));
    return res.body as { stats: Record<string, unknown>; errors: { code: string; message: string; id: number }[] };
  };

  /** A company whose primary mailbox signs in with OAuth, and one due follow-up. */
  async function seed(grant: { refreshToken: string; accessToken: string | null }, expiresAt: Date | null) {
    const db = t.handle.db;
    issued.push(grant.refreshToken, ...(grant.accessToken ? [grant.accessToken] : []));
    const s = await seedCompany(db, { name: 'Atelier Dupont' });
    const integrationId = await addMailbox(db, s.companyId, {
      emailAddress: MAILBOX,
      emailPassword: null,
      smtpServer: '127.0.0.1',
      smtpPort: mailbox.port,
      smtpUseSsl: false,
      imapServer: 'outlook.office365.com',
      imapPort: 993,
      authMethod: 'oauth2',
      oauthProvider: 'microsoft',
      oauthRefreshToken: encryptSecret(grant.refreshToken, MASTER_KEY),
      oauthAccessToken: grant.accessToken ? encryptSecret(grant.accessToken, MASTER_KEY) : null,
      oauthAccessTokenExpiresAt: expiresAt,
    });
    const inv = await seedInvoice(db, s);
    const followupId = await seedFollowup(db, s, { sourceId: inv });
    return { ...s, integrationId, followupId };
  }

  it('a valid token: the follow-up goes out through the mailbox with XOAUTH2, no refresh', async () => {
    const g = p.grant(MAILBOX);
    const s = await seed(g, new Date(Date.now() + 50 * MINUTE));
    const before = { ...p.counters };
    const body = await run(NOW);
    expect(body.stats).toMatchObject({ sent: 1, via: { mailbox: 1 } });
    expect(mailbox.received).toHaveLength(1);
    expect(mailbox.received[0].user).toBe(MAILBOX);
    expect(mailbox.received[0].raw).toMatch(/^From: "?Atelier Dupont"? <facturation@atelier\.example>/m);
    expect(platform.received).toHaveLength(0);
    expect(p.counters.refreshRequests).toBe(before.refreshRequests);
    expect((await history(t.handle.db, s.followupId))[0]).toMatchObject({ step: 1, delivery: 'sent' });
  });

  it('an expired token: refreshed once (rotated tokens stored), then sent', async () => {
    const g = p.grant(MAILBOX, { accessTtlSec: 1 });
    const s = await seed(g, new Date(Date.now() - MINUTE));
    const before = { ...p.counters };
    const body = await run(NOW);
    expect(body.stats).toMatchObject({ sent: 1, via: { mailbox: 1 } });
    expect(p.counters.refreshes - before.refreshes).toBe(1);
    expect(mailbox.received).toHaveLength(1);
    const row = await grantRow(t.handle.db, s.integrationId);
    issued.push(row.refresh!.value, row.access!.value);
    expect(row.refresh!.value).not.toBe(g.refreshToken);
    expect(p.isActive(row.access!.value, MAILBOX)).toBe(true);
    expect(new Date(row.oauth_access_token_expires_at!).getTime()).toBeGreaterThan(Date.now() + 50 * MINUTE);
  });

  it('a revoked grant: the follow-up is not marked sent, the reason is on it and in the run, the mailbox needs_reauth; the next run waits', async () => {
    const db = t.handle.db;
    const g = p.grant(MAILBOX);
    const s = await seed(g, new Date(Date.now() + 50 * MINUTE));
    p.revoke(MAILBOX);
    const body = await run(NOW);
    expect(body.stats).toMatchObject({ sent: 0, failedTries: 1 });
    expect(mailbox.received).toHaveLength(0);
    expect(platform.received).toHaveLength(0); // never silently sent from another address
    expect(body.errors).toEqual([expect.objectContaining({ scope: 'followup', id: s.followupId, code: 'oauth_needs_reauth' })]);
    expect(body.errors[0].message).toMatch(/reconnectez votre boîte Microsoft/);
    const [h] = await history(db, s.followupId);
    expect(h).toMatchObject({ step: 1, delivery: 'failed' });
    expect(h.error).toMatch(/^oauth_needs_reauth: .*reconnectez votre boîte Microsoft/);
    expect((await grantRow(db, s.integrationId)).last_sync_status).toBe('needs_reauth');
    expect(await reauthNotifications(db, s.companyId)).toHaveLength(1);

    // later runs do not try again (no login, no refresh, no second notification): the follow-up waits for a reconnection
    const mid = { ...p.counters, auths: mailbox.auths.refused + mailbox.auths.ok };
    const later = await run(new Date(NOW.getTime() + 3 * 24 * 60 * MINUTE));
    expect(later.stats).toMatchObject({ sent: 0, waiting: { mailbox_credentials: 1 } });
    expect(later.errors).toEqual([expect.objectContaining({ code: 'mailbox_credentials', id: s.companyId })]);
    expect(later.errors[0].message).toMatch(/reconnectez votre boîte Microsoft/);
    expect(p.counters.refreshRequests).toBe(mid.refreshRequests);
    expect(mailbox.auths.refused + mailbox.auths.ok).toBe(mid.auths);
    expect(await reauthNotifications(db, s.companyId)).toHaveLength(1);
    expect((await history(db, s.followupId)).map((r) => r.delivery)).toEqual(['failed']);
  });

  it('a provider outage: the send fails as temporary (retried later), the grant is kept, no notification', async () => {
    const db = t.handle.db;
    const g = p.grant(MAILBOX);
    const s = await seed(g, null);
    p.failNext(1, 503);
    const body = await run(NOW);
    expect(body.stats).toMatchObject({ sent: 0, failedTries: 1, failedFinal: 0 });
    expect(body.errors[0].code).toBe('oauth_transient');
    const [h] = await history(db, s.followupId);
    expect(h.delivery).toBe('failed');
    expect(h.error).toMatch(/^oauth_transient: /);
    const row = await grantRow(db, s.integrationId);
    expect(row.last_sync_status).toBeNull();
    expect(row.refresh!.value).toBe(g.refreshToken);
    expect(await reauthNotifications(db, s.companyId)).toHaveLength(0);
  });

  it('no token in a log line or a response', () => {
    expect(issued.length).toBeGreaterThan(4);
    const text = allLogs.join('\n');
    for (const tk of new Set(issued)) expect(text).not.toContain(tk);
  });
});
