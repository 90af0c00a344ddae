/**
 * The French names of our sends, as PostgreSQL format() patterns filled by the send views of
 * lib/mail/sends.ts: how the console lists an unknown send, and how a bounce notification names
 * what bounced.
 */
export const SEND_TEXTS = {
  console: {
    followupStep: 'Relance (étape %s) : %s',
    appointmentReminder: 'Rappel de rendez-vous : %s (%s h avant)',
    appointmentFallback: 'rendez-vous',
    deletionReminder: 'Rappel avant suppression du compte (%s)',
    deletionConfirmation: 'Confirmation de suppression du compte (%s)',
  },
  bounce: {
    followupStep: 'la relance n°%s (%s)',
    appointmentReminder: 'le rappel du rendez-vous du %s',
    deletionEmail: "l'e-mail de suppression du compte",
  },
};
