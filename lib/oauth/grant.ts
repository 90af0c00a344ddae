/**
 * The stored OAuth grant of a mailbox (docs/oauth-mailboxes.md): hands out an access token that
 * is valid for the next few minutes, refreshing it at the provider when needed, and records a grant
 * that is gone (`needs_reauth`, one notification to the company).
 *
 * Exactly one refresh per grant at a time: the refresh runs while the integration's row is locked
 * (`select … for update`), and the new tokens are written in that transaction; a concurrent caller
 * waits on the lock and then finds a token it can use. A refresh that succeeded at the provider is
 * never dropped: if that transaction fails to commit, the new tokens are written again on their own
 * (Microsoft rotates refresh tokens: losing the new one could leave only a dead one).
 */
import { links } from '../links.js';
import { sql } from 'drizzle-orm';
import { isTransientDbError, queryRows, withTransientRetry, type Db, type Executor } from '../../db/client.js';
import type { Config } from '../config.js';
import { decryptStoredSecret, encryptSecret } from '../crypto/fernet.js';
import type { Logger } from '../log.js';
import {
  NEEDS_REAUTH_LINK_TEXT,
  NEEDS_REAUTH_TITLE,
  clientError,
  incompleteGrantError,
  needsReauthError,
  needsReauthNotification,
  notConfiguredError,
  transientError,
  undecryptableError,
} from './messages.js';
import { PROVIDER_INFO, isOAuthProvider, tokenEndpointOf } from './providers.js';
import { needsRefresh, requestRefresh, type IssuedTokens } from './refresh.js';

/** The `last_sync_status` of a mailbox whose grant is gone; only a new grant from the web app clears it. */
export const NEEDS_REAUTH = 'needs_reauth';
/** Tries of the stand-alone write of tokens whose transaction failed to commit. */
export const ISSUED_TOKENS_WRITE_TRIES = 5;
/** Mean pause before try n+1 is n × this (withTransientRetry draws it at random up to twice that). */
const ISSUED_TOKENS_RETRY_MS = 200;

export type OAuthErrorCode =
  | 'oauth_needs_reauth' // the user must reconnect the mailbox in the web app
  | 'oauth_transient' // the provider is unreachable or answered 5xx/429: back off
  | 'oauth_client' // the provider refused our client (id, secret): an operator must act
  | 'oauth_not_configured' // a client id or token URL is missing from the environment
  | 'oauth_credentials' // nothing usable stored (no grant, undecryptable)
  | 'oauth_refresh_skipped'; // a dry run found an expired token: dry runs write nothing

/** Every OAuth failure; the message is French and never contains a token. */
export class OAuthError extends Error {
  constructor(
    readonly code: OAuthErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type GrantHooks = {
  /** Inside the refresh transaction, after the new tokens are written (tests break the commit here). */
  beforeCommit?: (tx: Executor) => Promise<void>;
};

export type GrantDeps = { db: Db; config: Config; log?: Logger; fetch?: typeof fetch; hooks?: GrantHooks };

export type AccessToken = {
  user: string;
  accessToken: string;
  expiresAt: Date;
  /** This call refreshed it at the provider (a login refused with it means the grant is gone). */
  refreshed: boolean;
  /** Identifies the stored token (its ciphertext) without revealing it: pass it back as `rejected`. */
  tokenId: string;
};

type GrantRow = {
  id: number;
  company_id: number;
  name: string;
  email_address: string | null;
  auth_method: string;
  oauth_provider: string | null;
  oauth_refresh_token: string | null;
  oauth_access_token: string | null;
  oauth_access_token_expires_at: Date | string | null;
  oauth_scopes: string | null;
  last_sync_status: string | null;
  last_sync_error: string | null;
  db_now: Date | string;
};

const asDate = (v: Date | string | null) => (v === null ? null : v instanceof Date ? v : new Date(v));

function decrypt(stored: string, masterKey: string | undefined, what: string): string {
  try {
    const s = decryptStoredSecret(stored, masterKey);
    if (s.legacyPlaintext) throw new Error('not a Fernet token');
    return s.value;
  } catch (err) {
    throw new OAuthError('oauth_credentials', undecryptableError(`${what}: ${(err as Error).message}`));
  }
}

/**
 * Records that the grant is gone: status `needs_reauth` with the reason, and one notification per
 * grant (the dedupe key is a digest of the stored refresh token, so a new grant that is revoked
 * later is notified again). Runs in the caller's transaction.
 */
async function recordNeedsReauth(
  exec: Executor,
  config: Config,
  row: Pick<GrantRow, 'id' | 'company_id' | 'name' | 'email_address' | 'oauth_provider'>,
  reason: string,
): Promise<string> {
  const message = needsReauthError(row.oauth_provider, reason).slice(0, 500);
  const link = links.mailboxSettings(config.FRONTEND_URL);
  await exec.execute(sql`
    update inbox_integrations set last_sync_status = ${NEEDS_REAUTH}, last_sync_error = ${message}
    where id = ${row.id}`);
  await exec.execute(sql`
    insert into notifications (company_id, user_id, type, title, message, link_url, link_text, source_type, source_id, dedupe_key)
    select company_id, null, 'INBOX_INTEGRATION_NEEDS_REAUTH', ${NEEDS_REAUTH_TITLE}, ${needsReauthNotification(row.oauth_provider, row.name, row.email_address)},
      ${link}, ${NEEDS_REAUTH_LINK_TEXT}, 'inbox_integration', id,
      'oauth-reauth:' || md5(coalesce(oauth_refresh_token, oauth_access_token, ''))
    from inbox_integrations where id = ${row.id}
    on conflict do nothing`);
  return message;
}

const SELECT_GRANT = (id: number) => sql`
  select id, company_id, name, email_address, auth_method, oauth_provider, oauth_refresh_token, oauth_access_token,
    oauth_access_token_expires_at, oauth_scopes, last_sync_status, last_sync_error, now() as db_now
  from inbox_integrations where id = ${id} for update`;

/**
 * A mailbox server refused a token that was just issued (or refused it twice): the grant no
 * longer gives access. Records `needs_reauth` and notifies once; returns the error to report.
 */
export async function markNeedsReauth(deps: Pick<GrantDeps, 'db' | 'config'>, integrationId: number, reason: string): Promise<OAuthError> {
  const message = await deps.db.transaction(async (tx) => {
    const [row] = await queryRows<GrantRow>(tx, SELECT_GRANT(integrationId));
    if (!row) return needsReauthError(null, reason);
    if (row.last_sync_status === NEEDS_REAUTH) return row.last_sync_error ?? needsReauthError(row.oauth_provider, reason);
    return recordNeedsReauth(tx, deps.config, row, reason);
  });
  return new OAuthError('oauth_needs_reauth', message);
}

type Issued = { tokens: IssuedTokens; access: string; refresh: string | null; previousRefresh: string | null };

/** The new tokens, written on their own after the refresh transaction failed to commit. */
async function writeIssuedAgain(deps: GrantDeps, integrationId: number, issued: Issued): Promise<boolean> {
  // running it twice is harmless (conditional on the refreshed grant): a lost connection is retried too
  return withTransientRetry(
    async () => {
      // only over the grant that was refreshed: a grant stored meanwhile by the web app wins
      const rows = await queryRows<{ id: number }>(
        deps.db,
        sql`
      update inbox_integrations set oauth_access_token = ${issued.access},
        oauth_refresh_token = coalesce(${issued.refresh}, oauth_refresh_token),
        oauth_access_token_expires_at = now() + make_interval(secs => ${issued.tokens.expiresInSec}),
        oauth_scopes = coalesce(${issued.tokens.scope}, oauth_scopes)
      where id = ${integrationId} and oauth_refresh_token is not distinct from ${issued.previousRefresh}
      returning id`,
      );
      return rows.length > 0;
    },
    { attempts: ISSUED_TOKENS_WRITE_TRIES, retryOn: isTransientDbError, backoffMs: 2 * ISSUED_TOKENS_RETRY_MS },
  );
}

export type AccessTokenOptions = {
  /** The `tokenId` a server just refused: refresh unless another caller already replaced it. */
  rejected?: string;
  /** Dry runs: use a valid stored token, never refresh (a refresh writes). */
  noRefresh?: boolean;
};

/**
 * An access token valid for at least REFRESH_MARGIN_MS, refreshed under the row lock when needed.
 * Throws OAuthError: `oauth_needs_reauth` (already recorded and notified), `oauth_transient`, …
 */
export async function accessTokenFor(deps: GrantDeps, integrationId: number, opts: AccessTokenOptions = {}): Promise<AccessToken> {
  const { config } = deps;
  const key = config.ENCRYPTION_MASTER_KEY;
  let issued: Issued | null = null;
  let result: AccessToken | OAuthError;
  try {
    result = await deps.db.transaction(async (tx): Promise<AccessToken | OAuthError> => {
      const [row] = await queryRows<GrantRow>(tx, SELECT_GRANT(integrationId));
      if (!row) return new OAuthError('oauth_credentials', 'boîte mail introuvable');
      const provider = row.oauth_provider;
      if (row.last_sync_status === NEEDS_REAUTH)
        return new OAuthError('oauth_needs_reauth', row.last_sync_error ?? needsReauthError(provider, 'grant'));
      if (!row.email_address || (!row.oauth_refresh_token && !row.oauth_access_token))
        return new OAuthError('oauth_credentials', incompleteGrantError);
      const expiresAt = asDate(row.oauth_access_token_expires_at);
      const stillRejected = opts.rejected !== undefined && opts.rejected === row.oauth_access_token;
      if (!stillRejected && !needsRefresh(row.oauth_access_token, expiresAt, asDate(row.db_now)!)) {
        return {
          user: row.email_address,
          accessToken: decrypt(row.oauth_access_token!, key, 'access token'),
          expiresAt: expiresAt!,
          refreshed: false,
          tokenId: row.oauth_access_token!,
        };
      }
      if (opts.noRefresh) return new OAuthError('oauth_refresh_skipped', "Jeton d'accès expiré : une simulation ne le renouvelle pas.");
      if (!row.oauth_refresh_token) {
        // an access token alone cannot be renewed: only a new consent gives a working grant
        return new OAuthError('oauth_needs_reauth', await recordNeedsReauth(tx, config, row, 'no refresh token stored'));
      }
      if (!isOAuthProvider(provider))
        return new OAuthError('oauth_not_configured', notConfiguredError(provider, `oauth_provider « ${provider ?? ''} »`));
      const endpoint = tokenEndpointOf(provider, config);
      if ('missing' in endpoint) return new OAuthError('oauth_not_configured', notConfiguredError(provider, endpoint.missing));
      if (!key) return new OAuthError('oauth_credentials', undecryptableError('ENCRYPTION_MASTER_KEY is not set'));
      const info = PROVIDER_INFO[provider];
      const scopes = info.sendScopeOnRefresh ? (row.oauth_scopes?.split(/\s+/).filter(Boolean) ?? [...info.scopes]) : null;
      const res = await requestRefresh({
        endpoint,
        refreshToken: decrypt(row.oauth_refresh_token, key, 'refresh token'),
        scopes,
        timeoutMs: config.OAUTH_TOKEN_TIMEOUT_MS,
        fetch: deps.fetch,
      });
      if (res.kind === 'revoked') return new OAuthError('oauth_needs_reauth', await recordNeedsReauth(tx, config, row, res.reason));
      if (res.kind === 'transient') return new OAuthError('oauth_transient', transientError(provider, res.reason));
      if (res.kind === 'client_error') return new OAuthError('oauth_client', clientError(provider, res.reason));
      const access = encryptSecret(res.tokens.accessToken, key);
      const refresh = res.tokens.refreshToken ? encryptSecret(res.tokens.refreshToken, key) : null;
      issued = { tokens: res.tokens, access, refresh, previousRefresh: row.oauth_refresh_token };
      const [stored] = await queryRows<{ expires_at: Date | string }>(
        tx,
        sql`
        update inbox_integrations set oauth_access_token = ${access},
          oauth_refresh_token = coalesce(${refresh}, oauth_refresh_token),
          oauth_access_token_expires_at = now() + make_interval(secs => ${res.tokens.expiresInSec}),
          oauth_scopes = coalesce(${res.tokens.scope}, oauth_scopes)
        where id = ${row.id}
        returning oauth_access_token_expires_at as expires_at`,
      );
      await deps.hooks?.beforeCommit?.(tx);
      return {
        user: row.email_address,
        accessToken: res.tokens.accessToken,
        expiresAt: asDate(stored.expires_at)!,
        refreshed: true,
        tokenId: access,
      };
    });
  } catch (err) {
    const got = issued as Issued | null;
    if (err instanceof OAuthError || !got) throw err;
    // the provider issued tokens but the transaction did not commit: write them on their own
    deps.log?.error(
      { integrationId, err: { message: (err as Error).message } },
      'oauth refresh not committed; writing the issued tokens again',
    );
    const written = await writeIssuedAgain(deps, integrationId, got);
    if (!written) throw err; // the web app stored a new grant meanwhile: that one is the truth
    const [row] = await queryRows<{ email_address: string; expires_at: Date | string }>(
      deps.db,
      sql`
      select email_address, oauth_access_token_expires_at as expires_at from inbox_integrations where id = ${integrationId}`,
    );
    return {
      user: row.email_address,
      accessToken: got.tokens.accessToken,
      expiresAt: asDate(row.expires_at)!,
      refreshed: true,
      tokenId: got.access,
    };
  }
  if (result instanceof OAuthError) throw result;
  return result;
}

/**
 * Runs `use` with a valid access token. A login refused with a token that was not just issued is
 * retried once with a refreshed one (revoked early, or clocks apart); refused with a fresh one,
 * the grant is gone: `needs_reauth`. `isAuthFailure` tells a refused login from other failures.
 */
export async function withAccessToken<T>(
  deps: GrantDeps,
  integrationId: number,
  use: (token: AccessToken) => Promise<T>,
  isAuthFailure: (err: unknown) => boolean,
  opts: { noRefresh?: boolean } = {},
): Promise<T> {
  const first = await accessTokenFor(deps, integrationId, opts);
  try {
    return await use(first);
  } catch (err) {
    if (!isAuthFailure(err) || opts.noRefresh) throw err;
    if (first.refreshed) throw await markNeedsReauth(deps, integrationId, 'login refused with a fresh token');
  }
  const second = await accessTokenFor(deps, integrationId, { rejected: first.tokenId });
  try {
    return await use(second);
  } catch (err) {
    if (isAuthFailure(err)) throw await markNeedsReauth(deps, integrationId, 'login refused with a fresh token');
    throw err;
  }
}
