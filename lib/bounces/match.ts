/**
 * Which of our sends a bounce is about, and what it amounts to, pure (rules: docs/bounces.md).
 * By the original's Message-ID (returned headers, VERP envelope, In-Reply-To / References), else
 * by recipient + subject inside MATCH_WINDOW_DAYS. A bounce that matches nothing is ignored.
 */
import { effectiveSeverity, type BounceSeverity } from '../mime/bounce.js';
import type { SendKind } from '../mail/sends.js';

/**
 * A bounce comes back within minutes, a delayed-delivery report within days (servers give up
 * after 5 days by default): two weeks covers both without reaching the previous monthly relance.
 */
export const MATCH_WINDOW_DAYS = 14;
/** A bounce dated slightly before its send is clock skew between the servers, not a different email. */
export const CLOCK_SKEW_MS = 15 * 60_000;
/** Soft bounces older than this no longer count towards SOFT_BOUNCES_AS_HARD (one bad week is not a dead address). */
export const SOFT_HISTORY_DAYS = 30;

/** One email we sent, as the matcher needs it. */
export type SendRef = {
  kind: SendKind;
  id: number;
  companyId: number | null;
  /** Normalised (no angle brackets). */
  messageId: string | null;
  /** Lower-cased; the client's (or user's) current address. */
  recipient: string | null;
  subject: string | null;
  sentAt: Date | null;
  clientId: number | null;
  clientName: string | null;
  followupId: number | null;
  /** What the company knows the email as ("relance n°2, Facture F-12", "rappel de rendez-vous"). */
  label: string | null;
};

/** What a stored bounce tells (lib/mime/report.ts). */
export type BounceEvidence = {
  key: string;
  inboxMessageId: number | null;
  recipients: string[];
  severity: BounceSeverity | null;
  status: string | null;
  diagnostic: string | null;
  /** The original's Message-ID from VERP, then the returned headers, then In-Reply-To / References. */
  verpMessageId: string | null;
  messageIds: string[];
  subject: string | null;
  at: Date;
};

export type Match = { send: SendRef; by: 'verp' | 'message_id' | 'recipient_subject' };

// Prefixes a bounce or a reply puts in front of the original subject.
const PREFIX =
  /^\s*(?:(?:re|fwd?|tr|aw|wg|réf|undeliverable|undelivered(?: mail)?|non remis|non distribuable|échec de la remise|delivery (?:status notification|failure)(?: \(failure\))?|returned mail|mail delivery failed|failure notice|delivery has failed to these recipients or groups|message non remis)\s*[:：-]\s*)+/i;
// Whole subjects of bounces that say nothing about the original.
const GENERIC =
  /^(?:returning message to sender|see transcript for details|undelivered mail returned to sender|delivery status notification(?: \(failure\))?|failure notice|mail delivery (?:failed|system)|returned mail|undeliverable|non remis|message non remis)\.?$/i;

/** A subject comparable with another: prefixes off, case and spaces folded; null when it tells nothing. */
export function comparableSubject(subject: string | null | undefined): string | null {
  if (!subject) return null;
  const s = subject.replace(PREFIX, '').replace(/\s+/g, ' ').trim().toLowerCase();
  return s && !GENERIC.test(s) ? s : null;
}

function sameSubject(a: string | null, b: string | null): boolean | null {
  const x = comparableSubject(a);
  const y = comparableSubject(b);
  if (x === null || y === null) return null; // unknown on one side: the recipient and the window decide
  return x === y || x.includes(y) || y.includes(x);
}

export function matchBounce(e: BounceEvidence, sends: readonly SendRef[], windowDays = MATCH_WINDOW_DAYS): Match | null {
  const byId = (id: string | null) => (id ? sends.find((s) => s.messageId === id) : undefined);
  const verp = byId(e.verpMessageId);
  if (verp) return { send: verp, by: 'verp' };
  for (const id of e.messageIds) {
    const s = byId(id);
    if (s) return { send: s, by: 'message_id' };
  }
  const since = e.at.getTime() - windowDays * 86_400_000;
  const recipients = new Set(e.recipients.map((r) => r.toLowerCase()));
  const candidates = sends.filter(
    (s) =>
      s.recipient !== null &&
      recipients.has(s.recipient) &&
      s.sentAt !== null &&
      s.sentAt.getTime() >= since &&
      s.sentAt.getTime() <= e.at.getTime() + CLOCK_SKEW_MS &&
      sameSubject(e.subject, s.subject) !== false,
  );
  if (!candidates.length) return null;
  // the latest send to that address before the bounce (a subject that agrees goes first)
  candidates.sort(
    (a, b) =>
      Number(sameSubject(e.subject, b.subject) === true) - Number(sameSubject(e.subject, a.subject) === true) ||
      b.sentAt!.getTime() - a.sentAt!.getTime() ||
      b.id - a.id,
  );
  return { send: candidates[0], by: 'recipient_subject' };
}

/** A decided bounce: the row written in send_bounces. */
export type BounceDecision = {
  evidence: BounceEvidence;
  match: Match | null;
  /** The failed address the decision is about (lower case), or null when ignored. */
  recipient: string | null;
  effective: BounceSeverity | null;
  outcome: 'hard' | 'soft' | 'ignored';
};

/**
 * Decides a batch in date order. `history(companyId, address)` gives the severities already
 * recorded for that address (oldest first, inside SOFT_HISTORY_DAYS); decisions of the same batch
 * are added to it as they are made, so three soft bounces imported together still make a hard one.
 */
export function decideBounces(
  batch: readonly BounceEvidence[],
  sends: readonly SendRef[],
  history: (companyId: number | null, address: string) => BounceSeverity[],
): BounceDecision[] {
  const seen = new Map<string, BounceSeverity[]>();
  return [...batch]
    .sort((a, b) => a.at.getTime() - b.at.getTime() || a.key.localeCompare(b.key))
    .map((e) => {
      const match = e.severity ? matchBounce(e, sends) : null;
      if (!match || !e.severity) return { evidence: e, match: null, recipient: null, effective: null, outcome: 'ignored' };
      const sendTo = match.send.recipient;
      const recipient = sendTo && (e.recipients.includes(sendTo) || !e.recipients.length) ? sendTo : (e.recipients[0] ?? sendTo);
      if (!recipient) return { evidence: e, match: null, recipient: null, effective: null, outcome: 'ignored' };
      const k = `${match.send.companyId ?? 0}:${recipient}`;
      const previous = seen.get(k) ?? history(match.send.companyId, recipient);
      const effective = effectiveSeverity(previous, e.severity);
      seen.set(k, [...previous, e.severity]);
      return { evidence: e, match, recipient, effective, outcome: effective };
    });
}
