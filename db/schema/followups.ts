import { sql } from 'drizzle-orm';
import { boolean, date, index, integer, numeric, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { companies } from './core.js';
import { clients } from './crm.js';
import { conversations } from './inbox.js';
import { deliveryState, followupHistoryStatus, followupStatus, followupType } from './enums.js';

const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

export const followups = pgTable(
  'followups',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id),
    clientId: integer('client_id')
      .notNull()
      .references(() => clients.id),
    type: followupType('type').notNull(),
    sourceType: text('source_type').notNull(), // quote | invoice | appointment | project | conversation | manual
    sourceId: integer('source_id'),
    sourceLabel: text('source_label').notNull(),
    dueDate: tstz('due_date').notNull(), // when the next step is due
    actualDate: tstz('actual_date'),
    status: followupStatus('status').notNull().default('A_FAIRE'),
    amount: numeric('amount', { precision: 10, scale: 2 }),
    autoEnabled: boolean('auto_enabled').notNull().default(false),
    // new: why an EN_ATTENTE follow-up is held (`bounced`: the client's address bounced hard;
    // resumed when the address changes, docs/bounces.md); null otherwise
    holdReason: text('hold_reason'),
    // new: the client's out-of-office announced a return ("absent jusqu'au 15"): its text, and the
    // date when it states one explicitly. Informative only: dunning goes on (docs/bounces.md)
    clientAwayUntil: date('client_away_until', { mode: 'string' }),
    clientAwayNote: text('client_away_note'),
    createdAt: tstz('created_at').notNull().defaultNow(),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('followups_source_key').on(t.companyId, t.sourceType, t.sourceId, t.type),
    // the send phase touches only what is due
    index('followups_due_idx')
      .on(t.dueDate)
      .where(sql`${t.status} = 'A_FAIRE' and ${t.autoEnabled}`),
    // foreign-key indexes: account deletion removes clients and conversations in bulk, each checked here
    index('followups_client_idx').on(t.clientId),
  ],
);

export const followupHistory = pgTable(
  'followup_history',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    followupId: integer('followup_id')
      .notNull()
      .references(() => followups.id, { onDelete: 'cascade' }),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id),
    message: text('message').notNull(),
    messageType: text('message_type').notNull().default('email'),
    status: followupHistoryStatus('status').notNull().default('ENVOYE'),
    sentByName: text('sent_by_name'),
    sentAt: tstz('sent_at').notNull().defaultNow(),
    conversationId: integer('conversation_id').references(() => conversations.id),
    step: integer('step'), // new; null for manual sends
    delivery: deliveryState('delivery'), // new
    messageId: text('message_id'), // new
    error: text('error'), // new
    attempts: integer('attempts').notNull().default(0), // new: SMTP tries for this step
    nextAttemptAt: tstz('next_attempt_at'), // new: back-off after a failed try
    // new: real (database) clock of the latest claim; a `sending` row older than the send lease
    // belonged to a crashed invocation and becomes `unknown` (never re-sent automatically)
    claimedAt: tstz('claimed_at'),
    // new: the run (cron_runs.id) that holds the claim, and when it handed the email to SMTP (the
    // server accepted DATA); a claim never handed over is released, a handed one becomes `unknown`
    // (docs/sending.md)
    claimedBy: text('claimed_by'),
    handedAt: tstz('handed_at'),
  },
  (t) => [
    uniqueIndex('followup_history_step_key').on(t.followupId, t.step),
    index('followup_history_company_sent_idx').on(t.companyId, t.sentAt),
    index('followup_history_conversation_idx').on(t.conversationId),
    index('followup_history_sending_idx')
      .on(t.claimedAt)
      .where(sql`${t.delivery} = 'sending'`),
    // a bounce names the Message-ID it returns (docs/bounces.md)
    index('followup_history_message_id_idx')
      .on(t.messageId)
      .where(sql`${t.messageId} is not null`),
  ],
);

/**
 * new: one row per source the automatic job ever created a follow-up for. A follow-up a user
 * deleted by hand is therefore not re-created by the next run (the original re-created them).
 */
export const followupCreations = pgTable(
  'followup_creations',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id, { onDelete: 'cascade' }),
    sourceType: text('source_type').notNull(),
    sourceId: integer('source_id').notNull(),
    type: followupType('type').notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [uniqueIndex('followup_creations_key').on(t.companyId, t.sourceType, t.sourceId, t.type)],
);
