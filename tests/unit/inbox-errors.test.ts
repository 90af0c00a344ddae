import { describe, expect, it } from 'vitest';
import { classifyImapError, IMAP_ERROR_CODES, ImapSyncError } from '../../lib/imap/errors.js';
import { frenchImapError } from '../../lib/jobs/inbox-sync/messages.js';

const err = (code: string, message = 'x', extra: Record<string, unknown> = {}) => Object.assign(new Error(message), { code, ...extra });

describe('classifyImapError: the real cause, one code each', () => {
  it.each([
    [err('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'), 'connect', 'cert_untrusted'],
    [err('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain', { tlsFailed: true }), 'connect', 'cert_untrusted'],
    [err('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'connect', 'cert_untrusted'],
    [
      err('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames", { tlsFailed: true }),
      'connect',
      'cert_hostname_mismatch',
    ],
    [err('CERT_HAS_EXPIRED', 'certificate has expired'), 'connect', 'cert_expired'],
    [Object.assign(new Error('Server does not support STARTTLS'), { tlsFailed: true }), 'connect', 'starttls_not_offered'],
    [err('EPROTO', 'wrong version number'), 'connect', 'tls_failed'],
    [err('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:993'), 'connect', 'connection_refused'],
    [err('ENOTFOUND', 'getaddrinfo ENOTFOUND imap.example.invalid'), 'connect', 'dns_failed'],
    [err('EAI_AGAIN', 'getaddrinfo EAI_AGAIN imap.example.fr'), 'connect', 'dns_failed'],
    [err('EHOSTUNREACH'), 'connect', 'host_unreachable'],
    [err('CONNECT_TIMEOUT', 'Failed to establish connection in required time'), 'connect', 'timeout_connect'],
    [err('GREETING_TIMEOUT', 'Failed to receive greeting from server in required time'), 'connect', 'timeout_greeting'],
    [err('ETIMEOUT', 'Socket timeout'), 'connect', 'timeout_login'],
    [err('ETIMEOUT', 'Socket timeout'), 'session', 'timeout_fetch'],
    [err('NoConnection', 'Connection not available'), 'session', 'connection_lost'],
    [err('ECONNRESET', 'read ECONNRESET'), 'session', 'connection_lost'],
    [Object.assign(new Error('Authentication failed'), { authenticationFailed: true }), 'connect', 'auth_failed'],
    [new Error('Command failed'), 'session', 'protocol'],
  ] as const)('%s (%s) → %s', (e, phase, code) => {
    expect(classifyImapError(e, phase).code).toBe(code);
  });
  it('keeps an ImapSyncError as it is', () => {
    const e = new ImapSyncError('mailbox', 'no such folder');
    expect(classifyImapError(e)).toBe(e);
  });
});

describe('frenchImapError', () => {
  it('has a distinct French sentence for every code', () => {
    const texts = IMAP_ERROR_CODES.map((c) => frenchImapError(new ImapSyncError(c, 'detail'), 'imap.exemple.fr'));
    expect(new Set(texts).size).toBe(IMAP_ERROR_CODES.length);
  });
  it('names the certificate (subject and issuer) within the 300 characters a response lists', () => {
    const e = new ImapSyncError('cert_untrusted', 'DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate', {
      subject: 'CN=imap.exemple.fr',
      issuer: 'CN=imap.exemple.fr',
      validFrom: 'Jan  1 00:00:00 2026 GMT',
      validTo: 'Jan  1 00:00:00 2027 GMT',
      altNames: 'DNS:imap.exemple.fr',
    });
    const text = frenchImapError(e, 'imap.exemple.fr').slice(0, 300);
    expect(text).toMatch(/sujet « CN=imap\.exemple\.fr »/);
    expect(text).toMatch(/émetteur « CN=imap\.exemple\.fr »/);
    expect(text).not.toMatch(/STARTTLS/);
  });
});
