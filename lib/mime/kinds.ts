/**
 * What kind of message this is, from its headers and structure only (pure; docs/inbox-sync.md,
 * kinds). The automated-sender patterns are shared with inbox-sync's client eligibility.
 */
// Local parts of automated senders that must never become clients: role
// accounts at the start (`notifications@`, `mailer-daemon@`), no-reply anywhere (`gmail-noreply@`,
// `notifications-noreply@`, `ne-pas-repondre.factures@`): no person has such an address.
export const ROLE_LOCAL =
  /^(?:mailer[-_.]?daemon|postmaster|bounces?|notifications?|newsletters?|automated?|auto[-_.]?confirm)(?:[-_.+].*)?$/i;
export const NO_REPLY_ANYWHERE =
  /no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|ne[-_.]?pas[-_.]?r[eé]pondre|nepasrepondre|pas[-_.]?de[-_.]?r[eé]ponse/i;
const BOUNCE_LOCAL = /^(?:mailer[-_.]?daemon|postmaster)(?:[-_.+].*)?$/i;

/** What kind of message this is; stored in `inbox_messages.kind` (docs/inbox-sync.md, kinds). */
export const MESSAGE_KINDS = ['person', 'auto_reply', 'bounce', 'report', 'list', 'automated'] as const;
export type MessageKind = (typeof MESSAGE_KINDS)[number];

export type MessageFacts = {
  fromEmail: string | null;
  subject?: string | null;
  /** The top-level Content-Type, lower-cased (`multipart/report`), and its `report-type` parameter. */
  contentType?: string | null;
  reportType?: string | null;
  /** `Action:` values of a delivery-status report (RFC 3464), lower-cased. */
  dsnActions?: readonly string[];
  headers: {
    autoSubmitted?: string | null;
    listId?: string | null;
    listUnsubscribe?: string | null;
    precedence?: string | null;
    xAutoreply?: string | null;
    xAutorespond?: string | null;
    xAutoResponseSuppress?: string | null;
  };
};

// Subjects of out-of-office and auto-replies as the common clients write them (Outlook/Exchange,
// Gmail, Apple, Thunderbird, in French, English, German, Spanish, Italian, Dutch)
// The marker must be the whole subject or be followed by a colon: "Auto : révision" or "Absent
// jeudi" from a garage's client is a person.
const AUTO_REPLY_SUBJECT =
  /^\s*(?:r[ée]ponse automatique|automatic reply|auto(?:matic)?[- ]?reply|autor[ée]ponse|out of (?:the )?office(?: auto-?reply)?|absence du bureau|absent du bureau|abwesenheitsnotiz|automatische antwort|respuesta autom[áa]tica|risposta automatica|automatisch antwoord)[\s\u00a0]*(?::|$)/i;
// Subjects of bounces sent without a proper report (old Exim/qmail, some Exchange versions)
const BOUNCE_SUBJECT =
  /^\s*(?:undeliver(?:ed|able)\b|mail delivery (?:failed|failure|system)|delivery (?:status notification \(failure\)|failure|has failed)|returned mail\b|failure notice\b|non remis\b|message non distribu[ée]|[ée]chec de (?:la )?(?:remise|distribution))/i;

/**
 * The kind of a message, from its headers and structure only (pure; docs/inbox-sync.md):
 * `bounce` a failed-delivery report (DSN with a failed action, or a mailer-daemon bounce);
 * `report` any other machine report (read receipt MDN, abuse/feedback ARF, delay or success DSN);
 * `auto_reply` an automatic answer (out of office, vacation, "we received your message");
 * `list` mailing lists and bulk mail; `automated` other machine mail (no-reply senders,
 * `Auto-Submitted: auto-generated`); `person` the rest.
 */
export function classifyMessage(m: MessageFacts): MessageKind {
  const email = m.fromEmail?.toLowerCase() ?? '';
  const local = email.slice(0, Math.max(0, email.lastIndexOf('@')));
  const h = m.headers;
  const auto = h.autoSubmitted?.trim().toLowerCase().split(/[;\s]/)[0] ?? '';
  const subject = m.subject ?? '';
  if (m.contentType === 'multipart/report') {
    const type = m.reportType?.trim().toLowerCase() ?? '';
    if (type === 'delivery-status')
      return (m.dsnActions ?? []).some((a) => a === 'failed') || !(m.dsnActions ?? []).length ? 'bounce' : 'report';
    return 'report'; // disposition-notification (MDN), feedback-report (ARF), others
  }
  if (BOUNCE_LOCAL.test(local) || (BOUNCE_SUBJECT.test(subject) && ((auto !== '' && auto !== 'no') || !local))) return 'bounce';
  if (
    auto === 'auto-replied' ||
    h.xAutoreply ||
    h.xAutorespond ||
    /^auto[-_]?reply$/i.test(h.precedence?.trim() ?? '') ||
    AUTO_REPLY_SUBJECT.test(subject)
  )
    return 'auto_reply';
  if (h.listId || h.listUnsubscribe || /^(?:bulk|list|junk)$/i.test(h.precedence?.trim() ?? '')) return 'list';
  if ((auto && auto !== 'no') || NO_REPLY_ANYWHERE.test(local) || ROLE_LOCAL.test(local)) return 'automated';
  return 'person';
}
