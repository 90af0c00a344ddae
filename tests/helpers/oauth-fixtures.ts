import { sql } from 'drizzle-orm';
import { queryRows, type Db } from '../../db/client.js';
import { decryptStoredSecret, encryptSecret } from '../../lib/crypto/fernet.js';
import { MASTER_KEY } from './inbox-fixtures.js';
import type { OAuthProviderServer } from './oauth-provider.js';

/** Fixtures of the OAuth mailbox tests: what the web app stores after consent (docs/oauth-mailboxes.md). */

export function oauthEnv(p: OAuthProviderServer): Record<string, string> {
  return { OAUTH_MICROSOFT_CLIENT_ID: p.clientId, OAUTH_MICROSOFT_CLIENT_SECRET: p.clientSecret, OAUTH_MICROSOFT_TOKEN_URL: p.tokenUrl };
}

export type StoredGrant = { refreshToken: string | null; accessToken: string | null; expiresAt: Date | null; scope?: string };

/** The web app's writes after a consent: tokens encrypted, status cleared so that syncing resumes. */
export async function storeGrant(db: Db, integrationId: number, g: StoredGrant) {
  await db.execute(sql`
    update inbox_integrations set auth_method = 'oauth2', oauth_provider = 'microsoft',
      oauth_refresh_token = ${g.refreshToken === null ? null : encryptSecret(g.refreshToken, MASTER_KEY)},
      oauth_access_token = ${g.accessToken === null ? null : encryptSecret(g.accessToken, MASTER_KEY)},
      oauth_access_token_expires_at = ${g.expiresAt}, oauth_scopes = ${g.scope ?? null},
      last_sync_status = null, last_sync_error = null, consecutive_failures = 0, next_sync_at = null
    where id = ${integrationId}`);
}

/** An OAuth mailbox (no password) on a host and port, with the given grant. */
export async function createOAuthIntegration(
  db: Db,
  companyId: number,
  server: { host?: string; port: number },
  user: string,
  g: StoredGrant,
  over: { smtpPort?: number; primary?: boolean } = {},
): Promise<number> {
  const [row] = await queryRows<{ id: number }>(
    db,
    sql`
    insert into inbox_integrations (company_id, integration_type, name, imap_server, imap_port, email_address, email_password, use_ssl,
      smtp_server, smtp_port, smtp_use_ssl, is_primary)
    values (${companyId}, 'imap', 'Boîte Microsoft', ${server.host ?? '127.0.0.1'}, ${server.port}, ${user}, null, false,
      ${over.smtpPort ? '127.0.0.1' : null}, ${over.smtpPort ?? null}, ${over.smtpPort ? false : null}, ${over.primary ?? false})
    returning id`,
  );
  await storeGrant(db, row.id, g);
  return row.id;
}

export type GrantColumns = {
  auth_method: string;
  last_sync_status: string | null;
  last_sync_error: string | null;
  oauth_refresh_token: string | null;
  oauth_access_token: string | null;
  oauth_access_token_expires_at: Date | null;
  oauth_scopes: string | null;
  sync_lease_until: Date | null;
  next_sync_at: Date | null;
  consecutive_failures: number;
};

export async function grantRow(db: Db, id: number) {
  const [r] = await queryRows<GrantColumns>(
    db,
    sql`
    select auth_method, last_sync_status, last_sync_error, oauth_refresh_token, oauth_access_token, oauth_access_token_expires_at, oauth_scopes,
      sync_lease_until, next_sync_at, consecutive_failures
    from inbox_integrations where id = ${id}`,
  );
  return {
    ...r,
    refresh: r.oauth_refresh_token ? decryptStoredSecret(r.oauth_refresh_token, MASTER_KEY) : null,
    access: r.oauth_access_token ? decryptStoredSecret(r.oauth_access_token, MASTER_KEY) : null,
  };
}

export async function reauthNotifications(db: Db, companyId: number) {
  return queryRows<{ message: string; title: string; dedupe_key: string }>(
    db,
    sql`
    select message, title, dedupe_key from notifications where company_id = ${companyId} and type = 'INBOX_INTEGRATION_NEEDS_REAUTH'`,
  );
}
