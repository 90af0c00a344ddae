/**
 * The four jobs as data: read by the routes, the local scheduler, the CLI, the status
 * route and the vercel.json check. No job code is imported here, so reading it costs nothing.
 */
export const JOB_IDS = ['inbox-sync', 'followups', 'account-deletions', 'overdue-reminders'] as const;
export type JobId = (typeof JOB_IDS)[number];

export type JobMeta = {
  id: JobId;
  /** Public path, as operators configured it on cron-job.org; `/api` + path also answers. */
  path: string;
  schedule: string;
  message: string;
  /** vercel.json `functions[…].maxDuration`, seconds. */
  maxDurationSec: number;
};

// maxDuration 300 s: the default and the ceiling of Hobby, the default of Pro (Fluid compute).
// Runs from Vercel Cron, the local scheduler and fan-out shards use it (minus a margin); an
// external ping keeps CRON_BUDGET_MS (25 s) for cron-job.org's 30 s timeout (lib/cron/budget.ts).
export const JOBS: Record<JobId, JobMeta> = {
  'inbox-sync': {
    id: 'inbox-sync', path: '/inbox/integrations/sync-all', schedule: '*/5 * * * *', maxDurationSec: 300,
    message: 'Synchronisation inbox terminée avec succès',
  },
  followups: {
    id: 'followups', path: '/followups/process-automatic', schedule: '0 * * * *', maxDurationSec: 300,
    message: 'Traitement des relances automatiques terminé avec succès',
  },
  'account-deletions': {
    id: 'account-deletions', path: '/users/process-account-deletions', schedule: '0 2 * * *', maxDurationSec: 300,
    message: 'Traitement des suppressions de comptes terminé avec succès',
  },
  'overdue-reminders': {
    id: 'overdue-reminders', path: '/cron/check-overdue-and-reminders', schedule: '0 * * * *', maxDurationSec: 300,
    message: 'Vérification des éléments en retard et des rappels terminée avec succès',
  },
};

export const STATUS_PATH = '/cron/status';

export function isJobId(v: string): v is JobId {
  return (JOB_IDS as readonly string[]).includes(v);
}
