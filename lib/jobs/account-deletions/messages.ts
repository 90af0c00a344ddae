import { links } from '../../links.js';
import type { OutgoingMail } from '../../mail/transport.js';
import { deterministicMessageId } from '../../mail/message-id.js';
import { formatFrenchDate, formatFrenchTime, safeZone } from '../../time/zone.js';

/**
 * Every text of account deletion: the two French emails (pure: data in, message out) and the
 * operator-facing texts of its logs and item errors.
 */

const greeting = (fullName: string | null) => (fullName && fullName.trim() ? `Bonjour ${fullName.trim()},` : 'Bonjour,');
const frenchDateTime = (d: Date, tz: string) => `${formatFrenchDate(d, tz)} à ${formatFrenchTime(d, tz)}`;

export function reminderMail(input: {
  userId: number;
  to: string;
  fullName: string | null;
  scheduledAt: Date;
  timezone: string | null;
  from: string;
  frontendUrl: string;
}): OutgoingMail {
  const tz = safeZone(input.timezone);
  const when = frenchDateTime(input.scheduledAt, tz);
  const loginUrl = links.login(input.frontendUrl);
  return {
    from: input.from,
    to: input.to,
    subject: `Votre compte Lokario sera supprimé le ${formatFrenchDate(input.scheduledAt, tz)}`,
    text: [
      greeting(input.fullName),
      '',
      `Vous avez demandé la suppression de votre compte Lokario. Elle aura lieu le ${when} (heure de ${tz}).`,
      '',
      'À cette date, votre compte et ses données seront définitivement effacés. Si vous étiez le dernier',
      "utilisateur de votre entreprise, toutes les données de l'entreprise le seront aussi (clients, devis,",
      'messages, boîtes mail connectées, tâches, rendez-vous) ; les factures émises sont conservées',
      'pendant la durée légale de 10 ans, détachées de votre compte.',
      '',
      `Vous avez changé d'avis ? Connectez-vous avant cette date et annulez la demande : ${loginUrl}`,
      '',
      "L'équipe Lokario",
    ].join('\n'),
    // one logical reminder per (user, scheduled date): a re-send carries the same id
    messageId: deterministicMessageId('deletion-reminder', [input.userId, input.scheduledAt.getTime()], input.from),
  };
}

export function confirmationMail(input: {
  userId: number;
  logId: number;
  to: string;
  fullName: string | null;
  scope: 'user' | 'company';
  companyName: string | null;
  deletedAt: Date;
  timezone: string | null;
  retainedInvoices: number;
  from: string;
}): OutgoingMail {
  const tz = safeZone(input.timezone);
  const lines = [
    greeting(input.fullName),
    '',
    `Conformément à votre demande, votre compte Lokario a été définitivement supprimé le ${frenchDateTime(input.deletedAt, tz)}.`,
  ];
  if (input.scope === 'company') {
    lines.push(
      '',
      `Vous étiez le dernier utilisateur${input.companyName ? ` de ${input.companyName}` : ''} : toutes les données de l'entreprise`,
      'ont été supprimées (clients, devis, messages, boîtes mail connectées et leurs identifiants, tâches,',
      'rendez-vous, notifications, paramètres).',
    );
    if (input.retainedInvoices > 0) {
      lines.push(
        `Les factures émises (${input.retainedInvoices}) sont des pièces comptables que la loi oblige à conserver 10 ans :`,
        'elles sont conservées, détachées de votre compte et sans vos notes, puis supprimées au terme de ce délai.',
      );
    }
  }
  lines.push('', "Merci d'avoir utilisé Lokario.", '', "L'équipe Lokario");
  return {
    from: input.from,
    to: input.to,
    subject: 'Votre compte Lokario a été supprimé',
    text: lines.join('\n'),
    messageId: deterministicMessageId('account-deleted', [input.userId, input.logId], input.from),
  };
}

/** Operator-facing texts of item errors (English, like the logs). */
export const OPERATOR_TEXTS = {
  confirmationDeadline: 'not sent before the run deadline',
} as const;

/** The job's name in the console, and the `message` of its route's success body (the original backend's sentence). */
export const JOB_TEXTS = {
  label: 'Suppressions de comptes',
  message: 'Traitement des suppressions de comptes terminé avec succès',
};
