import { sql } from 'drizzle-orm';
import { boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { cronRunOutcome, deliveryState } from './enums.js';

const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** new: the run ledger, one row per run, dry runs included (docs/contract.md). Not company-scoped. */
export const cronRuns = pgTable(
  'cron_runs',
  {
    id: text('id').primaryKey(), // the runId (uuid) returned in the response
    job: text('job').notNull(),
    trigger: text('trigger').notNull(),
    startedAt: tstz('started_at').notNull(),
    finishedAt: tstz('finished_at'),
    outcome: cronRunOutcome('outcome').notNull().default('running'),
    dryRun: boolean('dry_run').notNull().default(false),
    stats: jsonb('stats'),
    error: text('error'),
    /** A fan-out shard: the coordinator run that started it. */
    parentRunId: text('parent_run_id'),
    /** A coordinator: its plan (due, per-item cost, n) and each shard's start (child run id or error). */
    fanout: jsonb('fanout'),
    /** Database clock of the run's last heartbeat: a run silent for the lease TTL is dead (docs/contract.md). */
    heartbeatAt: tstz('heartbeat_at'),
  },
  (t) => [index('cron_runs_job_started_idx').on(t.job, t.startedAt), index('cron_runs_parent_idx').on(t.parentRunId)],
);

/** new: one lease per job (and shard); free when expired (docs/contract.md, runs and leases). */
export const cronLeases = pgTable('cron_leases', {
  job: text('job').primaryKey(), // job id, plus `#k/n` for a shard
  holder: text('holder').notNull(), // runId of the holder
  expiresAt: tstz('expires_at').notNull(),
});

/** new: proof of each account deletion, without personal data (docs/account-deletions.md). */
export const accountDeletionLog = pgTable('account_deletion_log', {
  id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
  deletedAt: tstz('deleted_at').notNull().defaultNow(),
  userId: integer('user_id').notNull(),
  companyId: integer('company_id'),
  emailSha256: text('email_sha256').notNull(),
  scope: text('scope').notNull(), // user | company
  counts: jsonb('counts').notNull().default({}),
});

/**
 * new: what operators did from the console or `npm run ops` (who, when, what). Never a secret:
 * `who` is a label the operator typed, `details` holds ids and the choice made.
 */
export const operatorActions = pgTable(
  'operator_actions',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    at: tstz('at').notNull().defaultNow(),
    actor: text('actor').notNull(), // e.g. "console:alice" or "cli:bob"
    action: text('action').notNull(), // resume_integration | resolve_send | run_job | dry_run_job
    target: text('target').notNull(), // e.g. "inbox_integration:12", "followup_history:7", "job:followups"
    details: jsonb('details').notNull().default({}),
  },
  (t) => [index('operator_actions_at_idx').on(t.at)],
);

/**
 * new: the claims of one-off platform emails that have no row of their own to carry a delivery
 * state (account-deletion reminder and confirmation). `key` is the email's idempotency key; no
 * address or other personal data is stored. Protocol: docs/sending.md.
 */
export const mailSends = pgTable(
  'mail_sends',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    key: text('key').notNull(),
    kind: text('kind').notNull(),
    delivery: deliveryState('delivery').notNull().default('sending'),
    claimedAt: tstz('claimed_at').notNull().defaultNow(),
    claimedBy: text('claimed_by'),
    handedAt: tstz('handed_at'),
    sentAt: tstz('sent_at'),
    messageId: text('message_id'),
    error: text('error'),
  },
  (t) => [
    uniqueIndex('mail_sends_key').on(t.key),
    index('mail_sends_sending_idx')
      .on(t.claimedAt)
      .where(sql`${t.delivery} = 'sending'`),
    // a bounce names the Message-ID it returns (docs/bounces.md)
    index('mail_sends_message_id_idx')
      .on(t.messageId)
      .where(sql`${t.messageId} is not null`),
  ],
);
