/**
 * Every French text of inbox-sync: the sentence stored in `last_sync_error` and returned in the
 * run's `errors[]` for each cause (docs/inbox-sync.md lists them), and the notification of a
 * mailbox whose synchronisation is paused.
 */
import { FernetError } from '../../crypto/fernet.js';
import { OAuthError } from '../../oauth/grant.js';
import { ImapSyncError, type CertificateInfo } from '../../imap/errors.js';

function certificateText(c: CertificateInfo | undefined): string {
  if (!c) return '';
  return ` Certificat : sujet « ${c.subject} », émetteur « ${c.issuer} », valide du ${c.validFrom} au ${c.validTo}${c.altNames ? `, noms ${c.altNames}` : ''}.`;
}

/** The French sentence stored in `last_sync_error` and returned in the run's `errors[]`. */
export function frenchImapError(e: ImapSyncError, host: string): string {
  const detail = ` (${e.message})`;
  const cert = certificateText(e.certificate);
  switch (e.code) {
    case 'auth_failed':
      return `Identifiants refusés par le serveur IMAP : ${e.message}`;
    // the certificate first: the response lists only the first 300 characters
    case 'cert_untrusted':
      return `Certificat du serveur IMAP ${host} signé par aucune autorité de confiance (mot de passe non envoyé).${cert}${detail}`;
    case 'cert_hostname_mismatch':
      return `Le certificat du serveur IMAP n'est pas établi pour le nom « ${host} » (vérifiez l'adresse du serveur).${cert}${detail}`;
    case 'cert_expired':
      return `Le certificat du serveur IMAP ${host} est expiré ou pas encore valide (le fournisseur doit le renouveler).${cert}${detail}`;
    case 'tls_failed':
      return `La négociation TLS avec le serveur IMAP ${host} a échoué (port ou option SSL incorrects ?)${detail}`;
    case 'starttls_not_offered':
      return `Le serveur IMAP ${host} n'offre pas de connexion chiffrée (STARTTLS) : synchronisation refusée pour ne pas envoyer le mot de passe en clair. Activez SSL/TLS (port 993) dans les réglages.${detail}`;
    case 'connection_refused':
      return `Le serveur IMAP ${host} refuse la connexion sur ce port : vérifiez le port et l'option SSL.${detail}`;
    case 'dns_failed':
      return `Le nom du serveur IMAP « ${host} » est introuvable (DNS) : vérifiez l'adresse du serveur.${detail}`;
    case 'host_unreachable':
      return `Le serveur IMAP ${host} est injoignable depuis le réseau.${detail}`;
    case 'timeout_connect':
      return `Le serveur IMAP ${host} ne répond pas à la connexion (délai dépassé).${detail}`;
    case 'timeout_greeting':
      return `Le serveur IMAP ${host} accepte la connexion mais n'envoie pas son message d'accueil (délai dépassé ; port SSL/TLS ?).${detail}`;
    case 'timeout_login':
      return `Le serveur IMAP ${host} ne répond plus pendant la négociation TLS ou l'identification (délai dépassé).${detail}`;
    case 'timeout_fetch':
      return `Le serveur IMAP ${host} a cessé de répondre pendant la lecture de la boîte (délai dépassé).${detail}`;
    case 'connection_lost':
      return `Connexion au serveur IMAP ${host} interrompue.${detail}`;
    case 'mailbox':
      return `Dossier IMAP inaccessible : ${e.message}`;
    case 'deadline':
      return `Synchronisation interrompue par la limite de temps de l'exécution ; la suivante reprendra là où celle-ci s'est arrêtée.`;
    default:
      return `Erreur IMAP : ${e.message}`;
  }
}

export function frenchError(e: ImapSyncError | FernetError | Error, host: string): string {
  if (e instanceof FernetError) return `Mot de passe enregistré illisible (clé de chiffrement ?) : ${e.message}`;
  if (e instanceof OAuthError) return e.message; // already French, without any token
  if (!(e instanceof ImapSyncError)) return `Erreur de synchronisation : ${e.message}`;
  return frenchImapError(e, host);
}

/** A mailbox row without what a session needs (OAuth: no password needed). */
export const CONFIG_INCOMPLETE = {
  password: 'configuration incomplète (serveur, adresse ou mot de passe manquant)',
  oauth: 'configuration incomplète (serveur ou adresse manquant)',
};

/** The company's notification once a mailbox's login was refused too many times in a row. */
export function pausedNotification(mailbox: { name: string; email: string | null }, failures: number) {
  return {
    title: 'Synchronisation de la boîte mail suspendue',
    message: `La boîte « ${mailbox.name} » (${mailbox.email ?? '?'}) a refusé la connexion ${failures} fois de suite. La synchronisation est suspendue : mettez à jour le mot de passe (ou le mot de passe d'application) dans les réglages de la boîte de réception.`,
    linkText: 'Mettre à jour la boîte mail',
  };
}

/** The job's name in the console, and the `message` of its route's success body (the original backend's sentence). */
export const JOB_TEXTS = {
  label: 'Synchronisation des boîtes mail',
  message: 'Synchronisation inbox terminée avec succès',
};
