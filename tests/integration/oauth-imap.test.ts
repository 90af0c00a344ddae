import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { queryRows, type Executor } from '../../db/client.js';
import { runJob } from '../../lib/cron/run.js';
import { createInboxSyncJob } from '../../lib/jobs/inbox-sync/index.js';
import type { InboxSyncOptions } from '../../lib/jobs/inbox-sync/session.js';
import { accessTokenFor } from '../../lib/oauth/grant.js';
import { parseConfig } from '../../lib/config.js';
import { readStatus } from '../../lib/cron/status.js';
import { adminQuery, createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { describeWithService, hasPostgres } from '../helpers/services.js';
import { hasDovecot, startDovecot, type Dovecot } from '../../devtools/dovecot.js';
import { createCompany, createIntegration, inboxEnv, messagesOf, simpleMail } from '../helpers/inbox-fixtures.js';
import { startOAuthProvider, type OAuthProviderServer } from '../helpers/oauth-provider.js';
import { createOAuthIntegration, grantRow, oauthEnv, reauthNotifications, storeGrant } from '../helpers/oauth-fixtures.js';
import { logCapture, testRuntime } from '../helpers/runtime.js';
import { createLogger } from '../../lib/log.js';
import { httpStatusOf } from '../../lib/cron/outcome.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';

const describeImap = describeWithService(hasDovecot() && hasPostgres(), 'Dovecot (apt-get install dovecot-imapd) and PostgreSQL');
const MINUTE = 60_000;

describeImap('inbox-sync: OAuth 2.0 mailboxes (Dovecot oauth2 passdb, local token endpoint, real PostgreSQL)', () => {
  let t: TestDatabase;
  let d: Dovecot;
  let p: OAuthProviderServer;
  /** Every token the provider handed out in these tests: none may appear in a log line or a response. */
  const issued: string[] = [];
  const allLogs: string[] = [];
  const bodies: string[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('oauthimap');
    p = await startOAuthProvider();
    d = await startDovecot({ oauth2: { introspectionUrl: p.introspectionUrl }, pool: 20 });
  }, 60_000);
  afterAll(async () => {
    await d?.stop();
    await p?.close();
    await t?.drop();
  });

  const env = (extra: Record<string, string> = {}) => inboxEnv({ ...oauthEnv(p), ...extra });
  async function sync(companyId: number, job: InboxSyncOptions = {}, now?: Date, extraEnv: Record<string, string> = {}) {
    const { rt, logs } = testRuntime(env(extraEnv), t.handle as never);
    const res = await runJob(
      createInboxSyncJob({ tls: { ca: d.cert }, ...job }),
      'http',
      { dryRun: false, scope: { companyId } as never, nowOverride: now },
      rt,
    );
    allLogs.push(...logs);
    bodies.push(JSON.stringify(res.body));
    return res;
  }
  const consent = (user: string, o: { accessTtlSec?: number } = {}) => {
    const g = p.grant(user, o);
    issued.push(g.accessToken, g.refreshToken);
    return g;
  };
  const stored = async (id: number) => {
    const r = await grantRow(t.handle.db, id);
    if (r.access) issued.push(r.access.value);
    if (r.refresh) issued.push(r.refresh.value);
    return r;
  };

  it('a valid access token: XOAUTH2 login, messages imported, no refresh', async () => {
    const db = t.handle.db;
    const box = d.takeMailbox();
    await d.append(box.user, box.password, [simpleMail('oauth-valid-1@x'), simpleMail('oauth-valid-2@x')]);
    const g = consent(box.user);
    const companyId = await createCompany(db);
    const id = await createOAuthIntegration(db, companyId, d, box.user, {
      refreshToken: g.refreshToken,
      accessToken: g.accessToken,
      expiresAt: new Date(Date.now() + 50 * MINUTE),
    });
    const before = { ...p.counters };
    const r = await sync(companyId);
    expect(httpStatusOf(r)).toBe(200);
    expect(r.body.stats).toMatchObject({ integrations: 1, synced: 1, failed: 0, needsReauth: 0, messagesImported: 2 });
    expect(p.counters.refreshRequests - before.refreshRequests).toBe(0);
    expect(p.counters.introspections - before.introspections).toBeGreaterThanOrEqual(1); // Dovecot asked the provider
    expect((await messagesOf(db, companyId)).map((m) => m.external_id).sort()).toEqual(['oauth-valid-1@x', 'oauth-valid-2@x']);
    const row = await stored(id);
    expect(row).toMatchObject({ auth_method: 'oauth2', sync_lease_until: null });
    expect(row.access!.value).toBe(g.accessToken); // untouched
  });

  it('an expired access token: refreshed first (Microsoft scopes sent), the rotated tokens stored encrypted, then synced', async () => {
    const db = t.handle.db;
    const box = d.takeMailbox();
    await d.append(box.user, box.password, [simpleMail('oauth-expired-1@x')]);
    const g = consent(box.user, { accessTtlSec: 1 });
    const companyId = await createCompany(db);
    // expiring within the 5-minute margin counts as expired
    const id = await createOAuthIntegration(db, companyId, d, box.user, {
      refreshToken: g.refreshToken,
      accessToken: g.accessToken,
      expiresAt: new Date(Date.now() + 2 * MINUTE),
    });
    await new Promise((r) => setTimeout(r, 1100)); // the provider's access token is now really expired
    expect(p.isActive(g.accessToken)).toBe(false);
    const before = { ...p.counters };
    const r = await sync(companyId);
    expect(r.body.stats).toMatchObject({ synced: 1, messagesImported: 1, needsReauth: 0 });
    expect(p.counters.refreshes - before.refreshes).toBe(1);
    const req = p.refreshLog[p.refreshLog.length - 1];
    expect(req).toMatchObject({ grant_type: 'refresh_token', client_id: p.clientId });
    expect(req.scope.split(' ').sort()).toEqual(
      ['https://outlook.office.com/IMAP.AccessAsUser.All', 'https://outlook.office.com/SMTP.Send', 'offline_access'].sort(),
    );
    const row = await stored(id);
    expect(row.refresh!.value).not.toBe(g.refreshToken); // rotated…
    expect(row.access!.value).not.toBe(g.accessToken);
    expect(p.isActive(row.access!.value, box.user)).toBe(true);
    // …and stored encrypted (Fernet), never in clear
    expect(row.oauth_refresh_token!.startsWith('gAAAAA')).toBe(true);
    expect(row.oauth_refresh_token).not.toContain(row.refresh!.value);
    expect(row.oauth_access_token!.startsWith('gAAAAA')).toBe(true);
    expect(new Date(row.oauth_access_token_expires_at!).getTime()).toBeGreaterThan(Date.now() + 50 * MINUTE);
    expect(row.oauth_scopes).toContain('offline_access');
  });

  it('a revoked grant: needs_reauth, one French notification, skipped on the next runs; a new grant resumes it', async () => {
    const db = t.handle.db;
    const box = d.takeMailbox();
    await d.append(box.user, box.password, [simpleMail('oauth-revoked-1@x')]);
    const g = consent(box.user);
    const companyId = await createCompany(db);
    const id = await createOAuthIntegration(db, companyId, d, box.user, {
      refreshToken: g.refreshToken,
      accessToken: g.accessToken,
      expiresAt: new Date(Date.now() + 50 * MINUTE),
    });
    p.revoke(box.user);
    const before = { ...p.counters };
    // the stored token looks valid: Dovecot refuses it, one refresh is tried, the provider says invalid_grant
    const r = await sync(companyId);
    expect(httpStatusOf(r)).toBe(200);
    expect(r.body.stats).toMatchObject({ integrations: 1, synced: 0, needsReauth: 1, failed: 0 });
    expect(r.body.errors as { code: string; id: number }[]).toEqual([expect.objectContaining({ id, code: 'oauth_needs_reauth' })]);
    expect(p.counters.refused - before.refused).toBe(1);
    const row = await stored(id);
    expect(row).toMatchObject({ last_sync_status: 'needs_reauth', sync_lease_until: null, consecutive_failures: 0 });
    expect(row.last_sync_error).toMatch(/reconnectez votre boîte Microsoft/);
    let notes = await reauthNotifications(db, companyId);
    expect(notes).toHaveLength(1);
    expect(notes[0].message).toMatch(/reconnectez votre boîte Microsoft/);
    expect(notes[0].message).toContain(box.user);
    // /cron/status lists it
    expect((await readStatus(db, new Date(), JOB_REGISTRY)).oauthMailboxes.integrations).toContainEqual({
      id,
      companyId,
      provider: 'microsoft',
      reason: row.last_sync_error,
    });

    // the next runs (even much later) skip it: no login, no refresh, no second notification
    const mid = { ...p.counters };
    for (const later of [5, 60, 24 * 60]) {
      const again = await sync(companyId, {}, new Date(Date.now() + later * MINUTE));
      expect(again.body.stats).toMatchObject({ integrations: 0 });
    }
    expect(p.counters.refreshRequests).toBe(mid.refreshRequests);
    expect(p.counters.introspections).toBe(mid.introspections);
    notes = await reauthNotifications(db, companyId);
    expect(notes).toHaveLength(1);
    expect(await messagesOf(db, companyId)).toHaveLength(0);

    // the user reconnects in the web app: a new grant is stored, syncing resumes
    const g2 = consent(box.user);
    await storeGrant(db, id, { refreshToken: g2.refreshToken, accessToken: g2.accessToken, expiresAt: new Date(Date.now() + 50 * MINUTE) });
    const resumed = await sync(companyId);
    expect(resumed.body.stats).toMatchObject({ synced: 1, messagesImported: 1 });
    expect((await grantRow(db, id)).last_sync_status).toBe('success');
    expect((await readStatus(db, new Date(), JOB_REGISTRY)).oauthMailboxes.integrations.map((i) => i.id)).not.toContain(id);
  });

  it('a token just issued and still refused by the server (AUTHENTICATIONFAILED): needs_reauth after exactly one refresh', async () => {
    const db = t.handle.db;
    const box = d.takeMailbox();
    const other = d.takeMailbox();
    // the consent was given for another account: the provider issues tokens, the server refuses them for this login
    const g = consent(other.user, { accessTtlSec: 3600 });
    const companyId = await createCompany(db);
    const id = await createOAuthIntegration(db, companyId, d, box.user, {
      refreshToken: g.refreshToken,
      accessToken: null,
      expiresAt: null,
    });
    const before = { ...p.counters };
    const r = await sync(companyId);
    expect(r.body.stats).toMatchObject({ needsReauth: 1, synced: 0 });
    expect(p.counters.refreshes - before.refreshes).toBe(1);
    const row = await stored(id);
    expect(row.last_sync_status).toBe('needs_reauth');
    expect(await reauthNotifications(db, companyId)).toHaveLength(1);
  });

  it('a provider outage (503, then a timeout): a normal back-off, the grant kept, no notification; then it syncs', async () => {
    const db = t.handle.db;
    const box = d.takeMailbox();
    await d.append(box.user, box.password, [simpleMail('oauth-outage-1@x')]);
    const g = consent(box.user);
    const companyId = await createCompany(db);
    const id = await createOAuthIntegration(db, companyId, d, box.user, {
      refreshToken: g.refreshToken,
      accessToken: null,
      expiresAt: null,
    });
    p.failNext(1, 503);
    const t0 = Date.now();
    const r = await sync(companyId, {}, new Date(t0));
    expect(r.body.stats).toMatchObject({ synced: 0, failed: 1, needsReauth: 0 });
    expect((r.body.errors as { code: string }[])[0].code).toBe('oauth_transient');
    let row = await stored(id);
    expect(row).toMatchObject({ last_sync_status: 'error', consecutive_failures: 1, sync_lease_until: null });
    expect(new Date(row.next_sync_at!).getTime()).toBe(t0 + 5 * MINUTE);
    expect(row.refresh!.value).toBe(g.refreshToken);
    expect(row.last_sync_error).toMatch(/ne répond pas/);

    // a token endpoint that does not answer in time is the same: back off
    p.setDelay(4_000);
    const slow = await sync(companyId, {}, new Date(t0 + 10 * MINUTE), { OAUTH_TOKEN_TIMEOUT_MS: '2000' });
    p.setDelay(0);
    expect(slow.body.stats).toMatchObject({ failed: 1, needsReauth: 0 });
    row = await stored(id);
    expect(row).toMatchObject({ last_sync_status: 'error', consecutive_failures: 2 });
    expect(await reauthNotifications(db, companyId)).toHaveLength(0);

    const ok = await sync(companyId, {}, new Date(t0 + 60 * MINUTE));
    expect(ok.body.stats).toMatchObject({ synced: 1, messagesImported: 1 });
    expect((await stored(id)).last_sync_status).toBe('success');
  });

  it('concurrent users of one expiring grant (a sync and four sends) refresh it exactly once', async () => {
    const db = t.handle.db;
    const box = d.takeMailbox();
    await d.append(box.user, box.password, [simpleMail('oauth-concurrent-1@x')]);
    const g = consent(box.user);
    const companyId = await createCompany(db);
    const id = await createOAuthIntegration(db, companyId, d, box.user, {
      refreshToken: g.refreshToken,
      accessToken: g.accessToken,
      expiresAt: new Date(Date.now() - MINUTE),
    });
    const before = { ...p.counters };
    p.setDelay(300); // a slow provider: every caller arrives while the first refresh is in flight
    const config = parseConfig({ ...env(), NODE_ENV: 'test', DATABASE_URL: 'postgres://x/y' });
    try {
      const [run, ...tokens] = await Promise.all([sync(companyId), ...Array.from({ length: 4 }, () => accessTokenFor({ db, config }, id))]);
      expect(run.body.stats).toMatchObject({ synced: 1, messagesImported: 1 });
      expect(p.counters.refreshRequests - before.refreshRequests).toBe(1);
      const row = await stored(id);
      for (const tk of tokens) expect(tk.accessToken).toBe(row.access!.value);
      expect(tokens.filter((tk) => tk.refreshed).length).toBeLessThanOrEqual(1);
    } finally {
      p.setDelay(0);
    }
  });

  it('a refresh whose transaction dies before COMMIT is not lost: the rotated tokens are written again', async () => {
    const db = t.handle.db;
    const box = d.takeMailbox();
    const g = consent(box.user);
    const companyId = await createCompany(db);
    const id = await createOAuthIntegration(db, companyId, d, box.user, {
      refreshToken: g.refreshToken,
      accessToken: null,
      expiresAt: null,
    });
    const config = parseConfig({ ...env(), NODE_ENV: 'test', DATABASE_URL: 'postgres://x/y' });
    const hooks = {
      // the connection of the refresh transaction is killed after the UPDATE, before COMMIT
      beforeCommit: async (tx: Executor) => {
        const [{ pid }] = await queryRows<{ pid: number }>(tx, sql`select pg_backend_pid() as pid`);
        await adminQuery(`select pg_terminate_backend(${Number(pid)})`);
      },
    };
    const before = { ...p.counters };
    const logs = logCapture();
    const tk = await accessTokenFor({ db, config, hooks, log: createLogger({ destination: logs.stream }) }, id);
    expect(tk.refreshed).toBe(true);
    expect(logs.lines.join('\n')).toContain('writing the issued tokens again'); // the commit really failed
    expect(p.counters.refreshes - before.refreshes).toBe(1);
    const row = await stored(id);
    expect(row.access!.value).toBe(tk.accessToken);
    // the old refresh token is dead (strict rotation): only the stored new one can refresh again
    expect(row.refresh!.value).not.toBe(g.refreshToken);
    const next = await accessTokenFor({ db, config }, id, { rejected: row.oauth_access_token! });
    expect(next.refreshed).toBe(true);
    expect(p.counters.refused - before.refused).toBe(0);
  });

  it('a password mailbox on the same server still signs in with its password', async () => {
    const db = t.handle.db;
    const box = d.takeMailbox();
    await d.append(box.user, box.password, [simpleMail('oauth-password-1@x')]);
    const companyId = await createCompany(db);
    const id = await createIntegration(db, companyId, d, box.user, box.password);
    const r = await sync(companyId);
    expect(r.body.stats).toMatchObject({ synced: 1, messagesImported: 1 });
    expect((await grantRow(db, id)).auth_method).toBe('password');
  });

  it('no token ever appears in a log line or a response', () => {
    expect(issued.length).toBeGreaterThan(10);
    expect(allLogs.length).toBeGreaterThan(0);
    const text = allLogs.join('\n') + bodies.join('\n');
    for (const tk of new Set(issued)) expect(text).not.toContain(tk);
  });
});
