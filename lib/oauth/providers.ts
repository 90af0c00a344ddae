/**
 * The OAuth 2.0 providers an OAuth mailbox can belong to: their token endpoints, the scopes the
 * web app asks for at consent, and their IMAP/SMTP hosts. The contract: docs/oauth-mailboxes.md.
 */
import type { Config } from '../config.js';

export const OAUTH_PROVIDERS = ['microsoft', 'google', 'generic'] as const;
export type OAuthProvider = (typeof OAUTH_PROVIDERS)[number];

export const isOAuthProvider = (v: unknown): v is OAuthProvider =>
  typeof v === 'string' && (OAUTH_PROVIDERS as readonly string[]).includes(v);

type ProviderInfo = {
  /** How the provider is named in French texts ("reconnectez votre boîte Microsoft"). */
  label: string;
  /** Scopes to request at consent (and, for Microsoft, again at each refresh). */
  scopes: readonly string[];
  /** Microsoft wants the scopes on every refresh; Google keeps those of the consent. */
  sendScopeOnRefresh: boolean;
  imap?: { host: string; port: number; useSsl: boolean };
  smtp?: { host: string; port: number; secure: boolean };
};

export const PROVIDER_INFO: Record<OAuthProvider, ProviderInfo> = {
  microsoft: {
    label: 'Microsoft',
    // offline_access: without it no refresh token is issued and the grant dies within the hour
    scopes: ['https://outlook.office.com/IMAP.AccessAsUser.All', 'https://outlook.office.com/SMTP.Send', 'offline_access'],
    sendScopeOnRefresh: true,
    imap: { host: 'outlook.office365.com', port: 993, useSsl: true },
    smtp: { host: 'smtp.office365.com', port: 587, secure: false },
  },
  google: {
    label: 'Google',
    scopes: ['https://mail.google.com/'],
    sendScopeOnRefresh: false,
    imap: { host: 'imap.gmail.com', port: 993, useSsl: true },
    smtp: { host: 'smtp.gmail.com', port: 465, secure: true },
  },
  generic: { label: 'mail', scopes: [], sendScopeOnRefresh: false },
};

export type TokenEndpoint = { url: string; clientId: string; clientSecret: string | undefined };

/** The token endpoint and client of a provider, or what is missing from the configuration. */
export function tokenEndpointOf(provider: OAuthProvider, config: Config): TokenEndpoint | { missing: string } {
  switch (provider) {
    case 'microsoft':
      if (!config.OAUTH_MICROSOFT_CLIENT_ID) return { missing: 'OAUTH_MICROSOFT_CLIENT_ID' };
      return {
        url:
          config.OAUTH_MICROSOFT_TOKEN_URL ??
          `https://login.microsoftonline.com/${encodeURIComponent(config.OAUTH_MICROSOFT_TENANT)}/oauth2/v2.0/token`,
        clientId: config.OAUTH_MICROSOFT_CLIENT_ID,
        clientSecret: config.OAUTH_MICROSOFT_CLIENT_SECRET,
      };
    case 'google':
      if (!config.OAUTH_GOOGLE_CLIENT_ID) return { missing: 'OAUTH_GOOGLE_CLIENT_ID' };
      return {
        url: config.OAUTH_GOOGLE_TOKEN_URL ?? 'https://oauth2.googleapis.com/token',
        clientId: config.OAUTH_GOOGLE_CLIENT_ID,
        clientSecret: config.OAUTH_GOOGLE_CLIENT_SECRET,
      };
    case 'generic':
      if (!config.OAUTH_GENERIC_TOKEN_URL) return { missing: 'OAUTH_GENERIC_TOKEN_URL' };
      if (!config.OAUTH_GENERIC_CLIENT_ID) return { missing: 'OAUTH_GENERIC_CLIENT_ID' };
      return {
        url: config.OAUTH_GENERIC_TOKEN_URL,
        clientId: config.OAUTH_GENERIC_CLIENT_ID,
        clientSecret: config.OAUTH_GENERIC_CLIENT_SECRET,
      };
  }
}
