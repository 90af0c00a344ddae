/**
 * Bounce handling, the sequence (docs/bounces.md): after inbox-sync stored a company's messages,
 * its new delivery reports are decided in batches, one transaction each: the bounces are claimed
 * in send_bounces (ON CONFLICT DO NOTHING RETURNING: a bounce seen twice, or by two runs at once,
 * acts once), then the hard ones act (send `bounced`, follow-ups on hold, one notification), and
 * auto-replies' announced returns are copied to the follow-ups.
 */
import type { Db, Executor } from '../../db/client.js';
import type { Logger } from '../log.js';
import type { Absence } from '../mime/absence.js';
import { CLOCK_SKEW_MS, MATCH_WINDOW_DAYS, SOFT_HISTORY_DAYS, decideBounces, type BounceEvidence } from './match.js';
import { bounceNotification, bounceReason, bouncedSendError } from './messages.js';
import {
  applyAbsences,
  applyHardBounces,
  bounceHistory,
  candidateSends,
  companiesWithPendingReports,
  insertBounces,
  lockCompanyBounces,
  pendingReports,
  type BounceNotification,
  type BounceRow,
  type HardBounce,
  type PendingReport,
} from './sql.js';
import type { StoredBounce } from '../mime/report.js';

/** Reports decided per transaction: one company's worth after a normal sync, bounded after a big first one. */
export const REPORTS_BATCH = 200;
/** Batches per company per run; the rest waits for the next run (they are found again: nothing is lost). */
export const MAX_BATCHES = 5;
/** Reports imported longer ago than this are not looked at again (a run acted on them, or they are too old to matter). */
export const PENDING_DAYS = 30;

export type BounceCounts = { hard: number; soft: number; ignored: number; absences: number };
export const noBounces = (): BounceCounts => ({ hard: 0, soft: 0, ignored: 0, absences: 0 });
export function addBounces(a: BounceCounts, b: BounceCounts) {
  a.hard += b.hard;
  a.soft += b.soft;
  a.ignored += b.ignored;
  a.absences += b.absences;
}

export function evidenceOf(key: string, inboxMessageId: number | null, b: StoredBounce, subject: string | null, at: Date): BounceEvidence {
  return {
    key,
    inboxMessageId,
    recipients: b.recipients ?? [],
    severity: b.severity ?? null,
    status: b.status ?? null,
    diagnostic: b.diagnostic ?? null,
    verpMessageId: b.verpMessageId ?? null,
    messageIds: b.messageIds ?? [],
    subject: b.originalSubject ?? subject,
    at,
  };
}

/**
 * Decides and acts on a batch of bounces of one scope (`company:<id>`, or `platform`), inside the
 * caller's transaction. Returns what this call acted on (a bounce claimed before counts nowhere).
 */
export async function actOnBounces(
  tx: Executor,
  p: { scope: string; companyId: number | null; bounces: BounceEvidence[]; frontendUrl: string },
): Promise<BounceCounts> {
  const counts = noBounces();
  if (!p.bounces.length) return counts;
  const times = p.bounces.map((b) => b.at.getTime());
  const recipients = [...new Set(p.bounces.flatMap((b) => b.recipients))];
  const sends = await candidateSends(tx, {
    companyId: p.companyId,
    messageIds: p.bounces.flatMap((b) => [...(b.verpMessageId ? [b.verpMessageId] : []), ...b.messageIds]),
    recipients,
    since: new Date(Math.min(...times) - MATCH_WINDOW_DAYS * 86_400_000),
    until: new Date(Math.max(...times) + CLOCK_SKEW_MS),
  });
  const pairs = new Map<string, { company_id: number; recipient: string }>();
  for (const s of sends) {
    if (s.companyId === null) continue;
    for (const r of [...recipients, ...(s.recipient ? [s.recipient] : [])])
      pairs.set(`${s.companyId}:${r}`, { company_id: s.companyId, recipient: r });
  }
  const earliest = new Date(Math.min(...times) - SOFT_HISTORY_DAYS * 86_400_000);
  const history = await bounceHistory(tx, [...pairs.values()], earliest);
  const decisions = decideBounces(p.bounces, sends, (companyId, address) => history.get(`${companyId ?? 0}:${address}`) ?? []);

  const rows: BounceRow[] = decisions.map((d) => {
    const send = d.match?.send;
    // a platform email without a company keeps no address: the row says only what happened
    const company = send?.companyId ?? null;
    return {
      scope: p.scope,
      bounce_key: d.evidence.key,
      company_id: company ?? (p.scope.startsWith('company:') ? p.companyId : null),
      inbox_message_id: d.evidence.inboxMessageId,
      send_kind: send?.kind ?? null,
      send_id: send?.id ?? null,
      client_id: send?.clientId ?? null,
      recipient: company !== null ? d.recipient : null,
      severity: d.evidence.severity,
      effective_severity: d.effective,
      outcome: d.outcome,
      matched_by: d.match?.by ?? null,
      status_code: d.evidence.status,
      diagnostic: d.evidence.diagnostic,
      bounced_at: d.evidence.at.toISOString(),
    };
  });
  const claimed = new Set((await insertBounces(tx, rows)).map((r) => r.bounce_key));
  const hard: HardBounce[] = [];
  const notifications = new Map<string, BounceNotification>();
  for (const d of decisions) {
    if (!claimed.has(d.evidence.key)) continue;
    counts[d.outcome]++;
    if (d.outcome !== 'hard' || !d.match || !d.recipient) continue;
    const send = d.match.send;
    const softAsHard = d.evidence.severity === 'soft';
    hard.push({
      send_kind: send.kind,
      send_id: send.id,
      error: bouncedSendError(d.evidence.status, d.evidence.diagnostic, softAsHard),
      company_id: send.companyId,
      client_id: send.clientId,
      recipient: d.recipient,
    });
    if (send.companyId !== null && send.clientId !== null) {
      notifications.set(`${send.companyId}:${send.clientId}:${d.recipient}`, {
        company_id: send.companyId,
        client_id: send.clientId,
        recipient: d.recipient,
        ...bounceNotification({
          clientName: send.clientName,
          address: d.recipient,
          reason: bounceReason(d.evidence.status, d.evidence.diagnostic, softAsHard),
          status: d.evidence.status,
          what: send.label,
          frontendUrl: p.frontendUrl,
          clientId: send.clientId,
        }),
      });
    }
  }
  await applyHardBounces(tx, hard, [...notifications.values()]);
  return counts;
}

function absenceItems(rows: PendingReport[]) {
  return rows.flatMap((r) => {
    const a = r.absence as Absence | null;
    return a && r.from_email ? [{ message_id: Number(r.id), email: r.from_email.toLowerCase(), until: a.until, note: a.text }] : [];
  });
}

/** One company's new delivery reports, batch by batch (each batch one transaction under the company's bounce lock). */
export async function processCompanyReports(db: Db, companyId: number, frontendUrl: string): Promise<BounceCounts> {
  const total = noBounces();
  const scope = `company:${companyId}`;
  for (let batch = 0; batch < MAX_BATCHES; batch++) {
    const more = await db.transaction(async (tx) => {
      await lockCompanyBounces(tx, scope);
      const pending = await pendingReports(tx, companyId, PENDING_DAYS, REPORTS_BATCH);
      const bounces = pending
        .filter((r) => r.kind === 'bounce' && r.bounce)
        .map((r) => evidenceOf(r.external_id, Number(r.id), r.bounce!, r.subject, new Date(r.at)));
      addBounces(total, await actOnBounces(tx, { scope, companyId, bounces, frontendUrl }));
      total.absences += await applyAbsences(tx, companyId, absenceItems(pending.filter((r) => r.kind === 'auto_reply')));
      return pending.length >= REPORTS_BATCH;
    });
    if (!more) break;
  }
  return total;
}

/**
 * After a sync: the reports of every company that imported something. A failure is logged and
 * counted, never fails the sync (the reports stay pending: the next run acts on them).
 */
export async function processReportsOf(
  db: Db,
  companyIds: Iterable<number>,
  frontendUrl: string,
  log: Logger,
): Promise<BounceCounts & { errors: number }> {
  const total = { ...noBounces(), errors: 0 };
  // most syncs import no report: one statement finds the companies that have one to act on
  let pending: number[];
  try {
    pending = await companiesWithPendingReports(db, [...new Set(companyIds)], PENDING_DAYS);
  } catch (err) {
    log.error({ err: (err as Error).message }, 'bounce processing failed; the next run retries');
    return { ...total, errors: 1 };
  }
  for (const companyId of pending) {
    try {
      addBounces(total, await processCompanyReports(db, companyId, frontendUrl));
    } catch (err) {
      total.errors++;
      log.error({ companyId, err: (err as Error).message }, 'bounce processing failed; the next run retries');
    }
  }
  return total;
}
