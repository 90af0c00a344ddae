/**
 * Sending through an OAuth mailbox's own SMTP server (SASL XOAUTH2): a MailSender that holds a
 * valid access token, refreshes it through the grant (lib/oauth/grant.ts) when it expires within
 * the margin, and reopens the SMTP pool with the new one. A refused login is retried once with a
 * refreshed token (AUTH precedes MAIL FROM: nothing was transmitted); refused with a fresh token,
 * the grant is `needs_reauth` and the send fails with that reason.
 */
import { MailError, type MailFactory, type MailSender } from '../mail/transport.js';
import { accessTokenFor, markNeedsReauth, OAuthError, type AccessToken, type GrantDeps } from './grant.js';
import { needsRefresh } from './refresh.js';

export type OAuthSmtpTarget = { integrationId: number; host: string; port: number; secure: boolean; user: string };

/** An OAuth failure as a send failure: only a provider outage is worth a quick retry. */
export function oauthMailError(err: OAuthError): MailError {
  return new MailError(err.code, err.message, err.code !== 'oauth_transient' && err.code !== 'oauth_needs_reauth');
}

const isAuthRefusal = (err: unknown) => err instanceof MailError && err.code === 'smtp_auth';

export function oauthMailboxSender(mail: MailFactory, target: OAuthSmtpTarget, deps: GrantDeps): MailSender {
  let current: { token: AccessToken; sender: MailSender } | null = null;
  // a pool opened with an older token may still carry sends: closed at the end, never mid-DATA
  const opened: MailSender[] = [];
  // concurrent sends share one token request (and so one row lock wait, one refresh)
  let pending: Promise<{ token: AccessToken; sender: MailSender }> | null = null;

  const open = (token: AccessToken) => {
    if (current?.token.tokenId === token.tokenId) return current;
    current = {
      token,
      sender: mail.mailbox({
        host: target.host,
        port: target.port,
        secure: target.secure,
        user: target.user,
        accessToken: token.accessToken,
      }),
    };
    opened.push(current.sender);
    return current;
  };
  const session = async (rejected?: string) => {
    if (!rejected && current && !needsRefresh(current.token.accessToken, current.token.expiresAt, new Date())) return current;
    for (;;) {
      pending ??= accessTokenFor(deps, target.integrationId, rejected ? { rejected } : {})
        .then(open)
        .finally(() => {
          pending = null;
        });
      const s = await pending;
      // joined a request that did not refuse the rejected token: ask again (at most once more)
      if (!rejected || s.token.tokenId !== rejected) return s;
    }
  };
  const withOAuthErrors = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw err instanceof OAuthError ? oauthMailError(err) : err;
    }
  };

  return {
    kind: 'smtp',
    async send(message) {
      const first = await withOAuthErrors(() => session());
      try {
        return await first.sender.send(message);
      } catch (err) {
        if (!isAuthRefusal(err)) throw err;
        if (first.token.refreshed)
          throw oauthMailError(
            await markNeedsReauth(deps, target.integrationId, `SMTP login refused with a fresh token (${(err as Error).message})`),
          );
      }
      const second = await withOAuthErrors(() => session(first.token.tokenId));
      try {
        return await second.sender.send(message);
      } catch (err) {
        if (isAuthRefusal(err))
          throw oauthMailError(
            await markNeedsReauth(deps, target.integrationId, `SMTP login refused with a fresh token (${(err as Error).message})`),
          );
        throw err;
      }
    },
    close() {
      for (const s of opened.splice(0)) s.close();
      current = null;
    },
  };
}
