/** Appointment reminders are not sent to an address that bounced hard (docs/bounces.md). */
import type { Executor } from '../../db/client.js';
import { hardBouncedPairs } from './sql.js';

/** Sets `clientAddressBounced` on the candidates whose client address is known bounced hard in their company: one statement. */
export async function markBouncedRecipients(
  db: Executor,
  candidates: { companyId: number; clientEmail: string | null; clientAddressBounced?: boolean }[],
) {
  const pairs = [
    ...new Map(
      candidates
        .filter((c) => c.clientEmail?.trim())
        .map((c) => [
          `${c.companyId}:${c.clientEmail!.trim().toLowerCase()}`,
          { company_id: c.companyId, recipient: c.clientEmail!.trim().toLowerCase() },
        ]),
    ).values(),
  ];
  if (!pairs.length) return 0;
  const rows = await hardBouncedPairs(db, pairs);
  const bounced = new Set(rows.map((r) => `${r.company_id}:${r.recipient}`));
  let n = 0;
  for (const c of candidates) {
    if (c.clientEmail && bounced.has(`${c.companyId}:${c.clientEmail.trim().toLowerCase()}`)) {
      c.clientAddressBounced = true;
      n++;
    }
  }
  return n;
}
