/**
 * Who a follow-up comes from and through which SMTP server (docs/followups.md, "Message and transport"): the company's primary
 * mailbox when it has SMTP settings (From = that address, display name = the company name), else
 * the platform transport (From = MAIL_FROM's address under the company's name, Reply-To = the
 * company's address). The decision is pure; the senders are opened once per run and reused.
 */
import { decryptStoredSecret, passwordForHost } from '../../crypto/fernet.js';
import type { MailFactory, MailSender } from '../../mail/transport.js';
import { NEEDS_REAUTH, type GrantDeps } from '../../oauth/grant.js';
import { needsReauthError } from '../../oauth/messages.js';
import { oauthMailboxSender } from '../../oauth/smtp.js';
import type { LoadedIntegration } from './sql.js';
import { addressOf, checkSingleAddress, describeAddressProblem } from '../../text/address.js';

export type SenderPlan =
  | {
      kind: 'mailbox';
      integrationId: number;
      host: string;
      port: number;
      secure: boolean;
      user: string;
      storedPassword: string;
      fromAddress: string;
      auth?: 'password';
    }
  /** An OAuth 2.0 mailbox (docs/oauth-mailboxes.md): XOAUTH2 with a token the grant keeps fresh. */
  | {
      kind: 'mailbox';
      integrationId: number;
      host: string;
      port: number;
      secure: boolean;
      user: string;
      fromAddress: string;
      auth: 'oauth2';
      provider: string | null;
      needsReauth: boolean;
    }
  | { kind: 'platform'; fromAddress: string; replyTo: string | null };

/** A From or Reply-To address of the company that is not exactly one address: nothing is sent. */
export type InvalidSender = { kind: 'invalid'; problem: { code: 'invalid_sender_address'; message: string } };

function invalid(what: string, raw: string, reason: Parameters<typeof describeAddressProblem>[2]): InvalidSender {
  return { kind: 'invalid', problem: { code: 'invalid_sender_address', message: describeAddressProblem(what, raw, reason) } };
}

export function planSender(
  integration: LoadedIntegration | null,
  mailFrom: string,
  companyEmail: string | null,
): SenderPlan | InvalidSender {
  if (integration?.smtp_server && integration.email_address && integration.auth_method === 'oauth2') {
    const from = checkSingleAddress(integration.email_address);
    if (!from.ok) return invalid(`mailbox ${integration.id} address`, integration.email_address, from.reason);
    const secure = integration.smtp_use_ssl ?? integration.smtp_port === 465;
    return {
      kind: 'mailbox',
      auth: 'oauth2',
      integrationId: integration.id,
      host: integration.smtp_server,
      port: integration.smtp_port ?? (secure ? 465 : 587),
      secure,
      user: integration.email_address,
      fromAddress: integration.email_address,
      provider: integration.oauth_provider ?? null,
      needsReauth: integration.last_sync_status === NEEDS_REAUTH,
    };
  }
  if (integration?.smtp_server && integration.email_address && integration.email_password) {
    const from = checkSingleAddress(integration.email_address);
    if (!from.ok) return invalid(`mailbox ${integration.id} address`, integration.email_address, from.reason);
    const secure = integration.smtp_use_ssl ?? integration.smtp_port === 465;
    const port = integration.smtp_port ?? (secure ? 465 : 587);
    return {
      kind: 'mailbox',
      integrationId: integration.id,
      host: integration.smtp_server,
      port,
      secure,
      user: integration.email_address,
      storedPassword: integration.email_password,
      fromAddress: from.address,
    };
  }
  // replies must reach the company, not the platform's no-reply address
  const replyTo = companyEmail?.trim() ? companyEmail : integration?.email_address?.trim() ? integration.email_address : null;
  if (replyTo === null) return { kind: 'platform', fromAddress: addressOf(mailFrom), replyTo: null };
  const checked = checkSingleAddress(replyTo);
  if (!checked.ok)
    return invalid(
      replyTo === companyEmail ? 'company_info.email (Reply-To)' : `mailbox ${integration?.id} address (Reply-To)`,
      replyTo,
      checked.reason,
    );
  return { kind: 'platform', fromAddress: addressOf(mailFrom), replyTo: checked.address };
}

export class CredentialError extends Error {
  readonly code = 'mailbox_credentials';
}

/** Opens (once per run) the sender of a plan; decrypts the mailbox password (lib/crypto/, docs/security.md). */
export function senderCache(mail: MailFactory, masterKey: string | undefined, oauth?: GrantDeps) {
  const mailboxes = new Map<number, { sender: MailSender; legacyPlaintext: boolean } | CredentialError>();
  return {
    get(plan: SenderPlan): { sender: MailSender; legacyPlaintext: boolean } {
      if (plan.kind === 'platform') return { sender: mail.platform(), legacyPlaintext: false };
      let entry = mailboxes.get(plan.integrationId);
      if (!entry && plan.auth === 'oauth2') {
        // a grant that is gone waits for the company to reconnect the mailbox: never claimed, never sent
        if (plan.needsReauth) entry = new CredentialError(needsReauthError(plan.provider, 'autorisation à renouveler'));
        else if (!oauth) entry = new CredentialError(`mailbox ${plan.integrationId}: OAuth mailbox, but no grant store given`);
        else entry = { sender: oauthMailboxSender(mail, plan, oauth), legacyPlaintext: false };
        mailboxes.set(plan.integrationId, entry);
      } else if (!entry && plan.auth !== 'oauth2') {
        try {
          const secret = decryptStoredSecret(plan.storedPassword, masterKey);
          const sender = mail.mailbox({
            host: plan.host,
            port: plan.port,
            secure: plan.secure,
            user: plan.user,
            pass: passwordForHost(secret.value, plan.host),
          });
          entry = { sender, legacyPlaintext: secret.legacyPlaintext };
        } catch (err) {
          // a token that does not verify is never sent to a server as if it were the password
          entry = new CredentialError(
            `mailbox ${plan.integrationId}: stored SMTP password cannot be decrypted (${(err as Error).message})`,
          );
        }
        mailboxes.set(plan.integrationId, entry);
      }
      if (entry instanceof CredentialError) throw entry;
      return entry!;
    },
  };
}
