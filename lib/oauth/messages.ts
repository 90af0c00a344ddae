/** French texts of OAuth mailboxes (notifications, statuses, errors shown to the company). */
import { PROVIDER_INFO, isOAuthProvider } from './providers.js';

const labelOf = (provider: string | null) => (isOAuthProvider(provider) ? PROVIDER_INFO[provider].label : 'mail');

export const NEEDS_REAUTH_TITLE = 'Reconnectez votre boîte mail';
export const NEEDS_REAUTH_LINK_TEXT = 'Reconnecter la boîte mail';

/** Stored as last_sync_error and shown with a follow-up that could not be sent. */
export function needsReauthError(provider: string | null, reason: string): string {
  return `Autorisation ${labelOf(provider)} révoquée ou expirée (${reason}) : reconnectez votre boîte ${labelOf(provider)} dans les réglages de la boîte de réception.`;
}

export function needsReauthNotification(provider: string | null, name: string, address: string | null): string {
  const label = labelOf(provider);
  return (
    `La boîte « ${name} » (${address ?? '?'}) n'autorise plus Lokario à s'y connecter : l'autorisation ${label} a été révoquée ou a expiré. ` +
    `La synchronisation et l'envoi des relances depuis cette boîte sont suspendus : reconnectez votre boîte ${label} dans les réglages de la boîte de réception.`
  );
}

export const transientError = (provider: string | null, reason: string) =>
  `Le service d'autorisation ${labelOf(provider)} ne répond pas pour l'instant (${reason}) : nouvel essai plus tard.`;

export const clientError = (provider: string | null, reason: string) =>
  `Connexion ${labelOf(provider)} refusée à l'application Lokario (${reason}) : vérifiez la configuration OAuth du serveur.`;

export const notConfiguredError = (provider: string | null, variable: string) =>
  `Connexion ${labelOf(provider)} impossible : ${variable} n'est pas configuré sur le serveur.`;

export const undecryptableError = (what: string) => `Jeton OAuth enregistré illisible (clé de chiffrement ?) : ${what}`;

export const incompleteGrantError =
  'Boîte OAuth sans autorisation enregistrée (jeton de rafraîchissement manquant) : reconnectez la boîte mail.';
