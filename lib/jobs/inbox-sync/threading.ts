/**
 * The pure rules of docs/inbox-sync.md: subjects, client eligibility, threading, back-off. No
 * I/O: rows and `now` in, decisions out. Message-IDs: lib/mail/message-id.ts; kinds, dedupe keys
 * and storable values: lib/mime/.
 */
import { NO_REPLY_ANYWHERE, ROLE_LOCAL, type MessageKind } from '../../mime/kinds.js';

const SUBJECT_PREFIX = /^\s*(?:(?:re|fwd?|tr|aw)\s*(?:\[\d+\])?\s*:\s*)+/i;
/** Subject without reply/forward prefixes (`re:`, `fwd:`, `fw:`, `tr:`, `aw:`), case-folded for matching. */
export function normaliseSubject(subject: string | null | undefined): string {
  let s = (subject ?? '').replace(/\s+/g, ' ').trim();
  let prev: string;
  do {
    prev = s;
    s = s
      .replace(SUBJECT_PREFIX, '')
      .replace(/^[:\s]+/, '')
      .trim();
  } while (s !== prev);
  return s;
}
export const subjectKey = (subject: string | null | undefined) => normaliseSubject(subject).toLowerCase();

export type SenderFacts = {
  fromEmail: string | null;
  /** The message's kind (classifyMessage); absent = judged from the headers below only. */
  kind?: MessageKind;
  headers: { autoSubmitted?: string | null; listId?: string | null; listUnsubscribe?: string | null; precedence?: string | null };
};

/** Why this sender must not become a client, or null for a real person. */
export function clientCreationBlocker(m: SenderFacts, blockedDomains: readonly string[]): string | null {
  const email = m.fromEmail?.toLowerCase() ?? '';
  const at = email.lastIndexOf('@');
  if (at <= 0) return 'no_sender';
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  const blocked = blockedDomains.map((d) => d.trim().toLowerCase().replace(/^@/, '')).filter(Boolean);
  if (blocked.some((d) => domain === d || domain.endsWith(`.${d}`))) return 'blocked_domain';
  if (m.kind === 'bounce' || m.kind === 'report' || m.kind === 'auto_reply') return m.kind;
  if (NO_REPLY_ANYWHERE.test(local) || ROLE_LOCAL.test(local)) return 'noreply';
  const auto = m.headers.autoSubmitted?.trim().toLowerCase();
  if (auto && auto !== 'no') return 'auto_submitted';
  if (m.headers.listId || m.headers.listUnsubscribe) return 'mailing_list';
  if (/^(bulk|list|junk)$/i.test(m.headers.precedence?.trim() ?? '')) return 'bulk';
  if (m.kind && m.kind !== 'person') return m.kind;
  return null;
}

/** Conversations seen by subject are matched only within this window (docs/inbox-sync.md, "Threading"). */
export const SUBJECT_MATCH_DAYS = 30;

export type ThreadInput = {
  inReplyTo: string | null;
  /** References in header order (oldest first); tried newest first. */
  references: readonly string[];
  subjectKey: string;
  clientId: number | null;
};

export type ThreadIndex = {
  /** external_id → conversation id, for the ids this batch refers to (and what it imported). */
  byExternalId: ReadonlyMap<string, number>;
  /** `${clientId}\u0000${subjectKey}` → the client's most recent conversation with that subject in the window. */
  byClientSubject: ReadonlyMap<string, number>;
};

export const clientSubjectKey = (clientId: number, key: string) => `${clientId}\u0000${key}`;

export type ThreadDecision =
  { conversationId: number; via: 'in-reply-to' | 'references' | 'subject' } | { conversationId: null; via: 'new' };

/**
 * In-Reply-To, then References newest first, matched exactly; else the same client's
 * conversation with the same subject; else a new one. Never merges senders on subject alone:
 * without a client there is no subject match at all.
 */
export function threadFor(m: ThreadInput, index: ThreadIndex): ThreadDecision {
  if (m.inReplyTo) {
    const c = index.byExternalId.get(m.inReplyTo);
    if (c !== undefined) return { conversationId: c, via: 'in-reply-to' };
  }
  for (let i = m.references.length - 1; i >= 0; i--) {
    const c = index.byExternalId.get(m.references[i]);
    if (c !== undefined) return { conversationId: c, via: 'references' };
  }
  if (m.clientId !== null && m.subjectKey) {
    const c = index.byClientSubject.get(clientSubjectKey(m.clientId, m.subjectKey));
    if (c !== undefined) return { conversationId: c, via: 'subject' };
  }
  return { conversationId: null, via: 'new' };
}

/** A Date header in the future (a wrong clock, spam) never puts a conversation above today's mail. */
export function clampToNow(date: Date | null | undefined, now: Date): Date {
  if (!date || Number.isNaN(date.getTime())) return now;
  return date > now ? now : date;
}

/** Back-off after a failed sync: the cron period doubled per failure, capped (docs/inbox-sync.md, "Failures"). */
export const BACKOFF_BASE_MS = 5 * 60_000; // the cron runs every 5 min: the first retry skips one run
export const BACKOFF_CAP_MS = 60 * 60_000; // at most an hour without trying
export function nextSyncAfterFailure(consecutiveFailures: number, now: Date): Date {
  const n = Math.max(1, consecutiveFailures);
  const delay = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(n - 1, 20));
  return new Date(now.getTime() + delay);
}

/** Login refused this many times in a row: the integration is paused and the company told. */
export const AUTH_FAILURES_BEFORE_PAUSE = 3;
