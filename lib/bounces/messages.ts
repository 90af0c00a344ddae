/** The French texts of bounce handling: the company's notification and the reason in words. */
import { links } from '../links.js';

/** The reason of a hard bounce in the words a company understands, from its status code and diagnostic. */
export function bounceReason(status: string | null, diagnostic: string | null, softAsHard: boolean): string {
  if (softAsHard) return 'plusieurs échecs temporaires de suite (boîte pleine ou serveur indisponible)';
  const d = diagnostic ?? '';
  if (status === '5.2.2' || /mailbox (?:is )?full|over ?quota|quota exceeded|boîte pleine/i.test(d)) return 'boîte de réception pleine';
  if (status === '5.2.1' || /disabled|désactiv/i.test(d)) return 'boîte désactivée';
  if (
    status === '5.1.2' ||
    status === '5.4.4' ||
    /domain (?:not found|does not exist)|host (?:not found|unknown)|domaine introuvable/i.test(d)
  )
    return 'domaine introuvable';
  if (
    status?.startsWith('5.1.') ||
    /user unknown|unknown user|no such user|does not exist|not found|introuvable|inconnue|n'existe pas|no mailbox|recipient (?:address )?rejected|invalid recipient/i.test(
      d,
    )
  )
    return 'adresse inconnue';
  if (status?.startsWith('5.7.') || /spam|blocked|policy|bloqué/i.test(d)) return 'refusé par le serveur du destinataire (filtrage)';
  return 'refusé par le serveur du destinataire';
}

export function bounceNotification(p: {
  clientName: string | null;
  address: string;
  reason: string;
  status: string | null;
  what: string | null;
  frontendUrl: string;
  clientId: number;
}) {
  const name = p.clientName?.trim() || 'ce client';
  return {
    title: `Adresse e-mail invalide : ${name}`,
    message:
      `${p.what ? `${p.what[0].toUpperCase()}${p.what.slice(1)}` : 'Un e-mail'} envoyé à ${name} (${p.address}) n'a pas pu être distribué : ${p.reason}${p.status ? ` (${p.status})` : ''}. ` +
      `Les relances automatiques et les rappels de rendez-vous vers cette adresse sont suspendus jusqu'à ce qu'elle soit corrigée dans la fiche du client.`,
    link_url: links.client(p.frontendUrl, p.clientId),
    link_text: 'Voir le client',
  };
}

/** The `error` of a bounced send: what the remote server said. */
export function bouncedSendError(status: string | null, diagnostic: string | null, softAsHard: boolean): string {
  const parts = ['bounced', status, diagnostic].filter((x): x is string => !!x);
  return `${parts.join(': ')}${softAsHard ? ' (third soft bounce in a row)' : ''}`.slice(0, 500);
}
