/** The stats of an account-deletions run (docs/account-deletions.md "Stats"), shared by its three sequences. */
export type DeletionStats = {
  due: number;
  remaining: number;
  deletedUsers: number;
  deletedCompanies: number;
  skippedCancelled: number;
  busy: number;
  failures: number;
  rowsDeleted: Record<string, number>;
  rowsNulled: Record<string, number>;
  ownersHandedOver: number;
  retainedInvoices: number;
  purgedInvoices: number;
  remindersSent: number;
  remindersLeft: number;
  confirmationsSent: number;
  emailFailures: number;
  /** Emails without an SMTP answer after DATA this run: `unknown`, never re-sent. */
  emailsUnknown: number;
  /** Claims of dead runs: given back (never handed over) / marked `unknown` (handed over). */
  releasedClaims: number;
  markedUnknown: number;
};

export const newStats = (): DeletionStats => ({
  due: 0,
  remaining: 0,
  deletedUsers: 0,
  deletedCompanies: 0,
  skippedCancelled: 0,
  busy: 0,
  failures: 0,
  rowsDeleted: {},
  rowsNulled: {},
  ownersHandedOver: 0,
  retainedInvoices: 0,
  purgedInvoices: 0,
  remindersSent: 0,
  remindersLeft: 0,
  confirmationsSent: 0,
  emailFailures: 0,
  emailsUnknown: 0,
  releasedClaims: 0,
  markedUnknown: 0,
});

/** Adds per-table counts into a running total. */
function addCounts(total: Record<string, number>, counts: Record<string, number>): void {
  for (const [k, v] of Object.entries(counts)) total[k] = (total[k] ?? 0) + v;
}

/** One account deleted (for real, or in the dry run's counts). */
export function countDeletion(
  stats: DeletionStats,
  d: {
    kind: 'user' | 'company';
    handedOver: boolean;
    deleted: Record<string, number>;
    nulled?: Record<string, number>;
    retainedInvoices: number;
  },
): void {
  stats.deletedUsers++;
  if (d.kind === 'company') stats.deletedCompanies++;
  if (d.handedOver) stats.ownersHandedOver++;
  addCounts(stats.rowsDeleted, d.deleted);
  if (d.nulled) addCounts(stats.rowsNulled, d.nulled);
  stats.retainedInvoices += d.retainedInvoices;
}
