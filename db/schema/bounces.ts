import { sql } from 'drizzle-orm';
import { bigint, check, index, integer, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { companies } from './core.js';

const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/**
 * new: one row per bounce acted on (or ignored), written with INSERT … ON CONFLICT DO NOTHING
 * RETURNING before anything else: a bounce imported twice, or seen by two concurrent runs, acts
 * once. Rules: docs/bounces.md.
 */
export const sendBounces = pgTable(
  'send_bounces',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    /** `company:<id>` (read from that company's mailbox) or `platform` (BOUNCE_IMAP_URL). */
    scope: text('scope').notNull(),
    /** The bounce's own key: its normalised Message-ID, or the content hash inbox-sync stores. */
    bounceKey: text('bounce_key').notNull(),
    /** The company of the send it applies to (null: nothing of ours matched, or a platform email). */
    companyId: integer('company_id').references(() => companies.id),
    inboxMessageId: integer('inbox_message_id'),
    /** followup_step | appointment_reminder | deletion_email; null when ignored. */
    sendKind: text('send_kind'),
    sendId: integer('send_id'),
    clientId: integer('client_id'),
    /** The failed address (lower case). */
    recipient: text('recipient'),
    /** What the bounce says (`hard` | `soft`), and what it amounts to with the address's history. */
    severity: text('severity'),
    effectiveSeverity: text('effective_severity'),
    /** hard | soft | ignored (no send of ours matched, or nothing in it names a failed recipient). */
    outcome: text('outcome').notNull(),
    /** message_id | verp | recipient_subject */
    matchedBy: text('matched_by'),
    statusCode: text('status_code'),
    diagnostic: text('diagnostic'),
    bouncedAt: tstz('bounced_at').notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('send_bounces_key').on(t.scope, t.bounceKey),
    // "is this client address known bounced hard?" and the soft-bounce history of an address
    index('send_bounces_recipient_idx').on(t.companyId, t.recipient, t.bouncedAt),
    index('send_bounces_created_idx').on(t.createdAt),
    check('send_bounces_outcome', sql`${t.outcome} in ('hard', 'soft', 'ignored')`),
  ],
);

/** new: the UID cursor of the platform bounce mailbox (BOUNCE_IMAP_URL); not company-scoped. */
export const bounceMailboxCursors = pgTable('bounce_mailbox_cursors', {
  /** host, user and folder of the mailbox (never its password). */
  mailbox: text('mailbox').primaryKey(),
  uidValidity: bigint('uid_validity', { mode: 'number' }),
  lastUid: bigint('last_uid', { mode: 'number' }),
  leaseUntil: tstz('lease_until'),
  /** The cron_runs id holding the lease; free once that run stops beating (docs/contract.md). */
  leaseHolder: text('lease_holder'),
  lastSyncAt: tstz('last_sync_at'),
  lastError: text('last_error'),
  updatedAt: tstz('updated_at').notNull().defaultNow(),
});
