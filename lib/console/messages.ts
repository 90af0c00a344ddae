/** The console's French texts (operators of a French SaaS); each job's name is its own (`label`). */

export const HEALTH_LABEL: Record<string, string> = {
  healthy: 'En bonne santé',
  unhealthy: 'En panne',
  degraded: 'À vérifier',
  unknown: 'Jamais exécuté',
  missed: 'Exécutions manquées',
};

export const OUTCOME_LABEL: Record<string, string> = {
  succeeded: 'réussie',
  partial: 'partielle',
  failed: 'échouée',
  skipped: 'ignorée',
  running: 'en cours',
};

export const ACTION_LABEL: Record<string, string> = {
  resume_integration: 'Reprise d’une boîte mail',
  resolve_send: 'Envoi résolu',
  run_job: 'Exécution lancée',
  dry_run_job: 'Simulation lancée',
};

export const RESOLUTION_LABEL: Record<string, string> = {
  sent: 'envoyé',
  resend: 'non envoyé — renvoyer au prochain passage',
};

/** Why a mailbox is listed, in plain French. */
export function mailboxReason(status: string | null, failures: number, backoffUntil: string | null): string {
  switch (status) {
    case 'paused':
      return `Synchronisation suspendue : le serveur a refusé la connexion ${failures} fois de suite. Mettez à jour le mot de passe de la boîte, puis reprenez-la.`;
    case 'auth_error':
      return `Connexion refusée par le serveur (identifiants) — ${failures} échec(s) de suite ; la boîte sera suspendue si cela continue.`;
    case 'needs_reauth':
      return 'Autorisation OAuth (Microsoft / Google) révoquée ou expirée : l’entreprise doit reconnecter sa boîte dans Lokario. « Reprendre » ne suffit pas sans nouvelle autorisation.';
    case 'error':
      return `Erreur de synchronisation — ${failures} échec(s) de suite${backoffUntil ? `, prochain essai ${backoffUntil}` : ''}.`;
    default:
      return backoffUntil ? `En attente après ${failures} échec(s) : prochain essai ${backoffUntil}.` : 'À surveiller.';
  }
}

export const MAILBOX_STATUS_LABEL: Record<string, string> = {
  paused: 'Suspendue',
  auth_error: 'Identifiants refusés',
  error: 'En erreur',
  needs_reauth: 'À reconnecter (OAuth)',
};
