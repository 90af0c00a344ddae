/**
 * What inbox-sync keeps of a delivery report when it imports it (in `external_metadata`), read
 * from the full source while it is at hand: the parsed bounce (recipients, status, severity,
 * original Message-ID, VERP id), or an auto-reply's announced return. lib/bounces/act.ts acts on
 * them after the segment is stored.
 */
import { headerFields, parseBounce, type BounceSeverity } from './bounce.js';
import { normaliseMessageId, parseIdList } from '../mail/message-id.js';
import { announcedReturn, type Absence } from './absence.js';
import { verpMessageId } from '../mail/verp.js';

export type StoredBounce = {
  recipients: string[];
  /** null: nothing in it names a failed recipient (counted as ignored, never guessed). */
  severity: BounceSeverity | null;
  status: string | null;
  diagnostic: string | null;
  /** Original Message-IDs, best first: the returned headers, then In-Reply-To / References. */
  messageIds: string[];
  verpMessageId: string | null;
  originalSubject: string | null;
};

export type ReportFacts = { bounce?: StoredBounce; absence?: Absence };

const DIAGNOSTIC_MAX = 500;
/** Only the header block is read for the delivery headers: a bounce's body quotes the original's. */
const HEAD_MAX = 64 * 1024;

export function bounceFacts(source: Buffer): StoredBounce {
  const raw = source.toString('latin1');
  const cut = raw.search(/\r?\n\r?\n/);
  const head = headerFields(raw.slice(0, cut < 0 ? Math.min(raw.length, HEAD_MAX) : Math.min(cut, HEAD_MAX)));
  const values = (name: string) => head.filter((f) => f.name === name).map((f) => f.value);
  const verp = verpMessageId(['to', 'delivered-to', 'x-original-to', 'envelope-to', 'x-envelope-to'].flatMap(values));
  const threadIds = [...parseIdList(values('in-reply-to')[0] ?? null), ...parseIdList(values('references')[0] ?? null)];
  const parsed = parseBounce(source);
  const ids = [
    ...new Set(
      [parsed?.originalMessageId ?? null, ...threadIds]
        .filter((x): x is string => !!x)
        .map((x) => normaliseMessageId(x))
        .filter((x): x is string => !!x),
    ),
  ];
  return {
    recipients: parsed?.recipients ?? [],
    severity: parsed?.severity ?? null,
    status: parsed?.status ?? null,
    diagnostic: parsed?.diagnostic ? parsed.diagnostic.slice(0, DIAGNOSTIC_MAX) : null,
    messageIds: ids,
    verpMessageId: verp,
    originalSubject: parsed?.originalSubject ?? null,
  };
}

/** The facts of one imported message worth keeping (nothing for ordinary mail). */
export function reportFacts(
  m: { kind: string; subject: string; text: string; sentAt: Date | null },
  source: Buffer,
  now = new Date(),
): ReportFacts | undefined {
  if (m.kind === 'bounce') return { bounce: bounceFacts(source) };
  if (m.kind === 'auto_reply') {
    const absence = announcedReturn(m.subject, m.text, m.sentAt ?? now);
    return absence ? { absence } : undefined;
  }
  return undefined;
}
