/**
 * What went wrong with a mailbox's IMAP session, named by its real cause (pure: no I/O). Each
 * cause has its own code (the `errors[].code` of the run, `last_sync_error` in French) so the
 * operator is sent to the right fix: docs/inbox-sync.md lists them.
 */

export const IMAP_ERROR_CODES = [
  'auth_failed',
  'cert_untrusted',
  'cert_hostname_mismatch',
  'cert_expired',
  'tls_failed',
  'starttls_not_offered',
  'connection_refused',
  'dns_failed',
  'host_unreachable',
  'timeout_connect',
  'timeout_greeting',
  'timeout_login',
  'timeout_fetch',
  'connection_lost',
  'mailbox',
  'protocol',
  /** The run's deadline closed the connection: not a failure of the mailbox (it is `partial`). */
  'deadline',
] as const;
export type ImapErrorCode = (typeof IMAP_ERROR_CODES)[number];

/** The server's certificate as read by a second, credential-free handshake after a refusal. */
export type CertificateInfo = { subject: string; issuer: string; validFrom: string; validTo: string; altNames: string | null };

/** Where the session was: inside connect-and-login, or running commands on the open folder. */
export type SessionPhase = 'connect' | 'session';

export class ImapSyncError extends Error {
  constructor(
    readonly code: ImapErrorCode,
    message: string,
    readonly certificate?: CertificateInfo,
  ) {
    super(message);
  }
}

/** Node/OpenSSL verification codes meaning "no trusted authority vouches for this certificate". */
const UNTRUSTED_CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REJECTED',
  'CERT_REVOKED',
  'INVALID_CA',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
]);
const EXPIRED_CERT_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
]);
const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA']);
const LOST_CODES = new Set(['NoConnection', 'ECONNRESET', 'EPIPE', 'ClosedAfterConnectText', 'ClosedAfterConnectTLS', 'ECONNABORTED']);

/** Whether the code names a certificate problem (the job then reads the certificate to name it). */
export const isCertificateCode = (code: ImapErrorCode) =>
  code === 'cert_untrusted' || code === 'cert_hostname_mismatch' || code === 'cert_expired';

/**
 * Maps what imapflow (or Node's net/tls) threw to its cause. `phase` tells a socket timeout while
 * logging in from one while reading the folder; a certificate refusal keeps Node's code, even when
 * it happened inside STARTTLS (imapflow marks those `tlsFailed` as well).
 */
export function classifyImapError(err: unknown, phase: SessionPhase = 'session'): ImapSyncError {
  if (err instanceof ImapSyncError) return err;
  const e = (err ?? {}) as {
    authenticationFailed?: boolean;
    tlsFailed?: boolean;
    code?: unknown;
    message?: string;
    responseText?: string;
    serverResponseCode?: string;
  };
  const code = typeof e.code === 'string' ? e.code : '';
  const msg = String(e.responseText || e.message || err).slice(0, 300);
  if (e.authenticationFailed || e.serverResponseCode === 'AUTHENTICATIONFAILED')
    return new ImapSyncError('auth_failed', `login refused: ${msg}`);
  if (EXPIRED_CERT_CODES.has(code)) return new ImapSyncError('cert_expired', `${code}: ${msg}`);
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return new ImapSyncError('cert_hostname_mismatch', msg);
  if (UNTRUSTED_CERT_CODES.has(code)) return new ImapSyncError('cert_untrusted', `${code}: ${msg}`);
  if (e.tlsFailed && /does not support STARTTLS|STARTTLS is not possible|can not start TLS/i.test(msg))
    return new ImapSyncError('starttls_not_offered', msg);
  if (code === 'CONNECT_TIMEOUT') return new ImapSyncError('timeout_connect', msg);
  if (code === 'GREETING_TIMEOUT') return new ImapSyncError('timeout_greeting', msg);
  if (code === 'UPGRADE_TIMEOUT') return new ImapSyncError('timeout_login', msg);
  if (code === 'ETIMEOUT' || code === 'ETIMEDOUT' || /timeout/i.test(msg))
    return new ImapSyncError(phase === 'connect' ? 'timeout_login' : 'timeout_fetch', msg);
  if (e.tlsFailed || code === 'EPROTO' || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS'))
    return new ImapSyncError('tls_failed', `${code || 'TLS'}: ${msg}`);
  if (code === 'ECONNREFUSED') return new ImapSyncError('connection_refused', msg);
  if (DNS_CODES.has(code)) return new ImapSyncError('dns_failed', `${code}: ${msg}`);
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EHOSTDOWN')
    return new ImapSyncError('host_unreachable', `${code}: ${msg}`);
  if (LOST_CODES.has(code) || /ECONNRESET|EPIPE|closed|Connection not available/i.test(msg))
    return new ImapSyncError('connection_lost', msg);
  return new ImapSyncError('protocol', msg);
}
