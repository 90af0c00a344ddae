/**
 * The attention of a job that emails (docs/sending.md): its claim table's crash residue turns a
 * healthy job `degraded`, and is shown under the job's own section of /cron/status.
 */
import type { EmailAttention, JobAttention } from './types.js';

export type SendsSection = { sendsInUnknownState: number; staleSendingClaims: number };

export function sendsAttention<K extends string>(section: K, residue: EmailAttention): JobAttention<Record<K, SendsSection>> {
  return {
    emails: residue,
    sections: { [section]: { sendsInUnknownState: residue.unknownSends, staleSendingClaims: residue.staleClaims } } as Record<
      K,
      SendsSection
    >,
  };
}
