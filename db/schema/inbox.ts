import { sql } from 'drizzle-orm';
import { bigint, boolean, check, customType, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { companies } from './core.js';
import { clients } from './crm.js';

const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({ dataType: () => 'bytea' });

export const inboxIntegrations = pgTable(
  'inbox_integrations',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id),
    integrationType: text('integration_type').notNull().default('imap'),
    name: text('name').notNull(),
    imapServer: text('imap_server'),
    imapPort: integer('imap_port'),
    emailAddress: text('email_address'),
    emailPassword: text('email_password'), // Fernet token (original format) or legacy plaintext
    useSsl: boolean('use_ssl').notNull().default(true),
    isActive: boolean('is_active').notNull().default(true),
    isPrimary: boolean('is_primary').notNull().default(false),
    lastSyncAt: tstz('last_sync_at'),
    lastSyncStatus: text('last_sync_status'), // success | error | auth_error | paused
    lastSyncError: text('last_sync_error'),
    imapFolder: text('imap_folder').notNull().default('INBOX'), // new
    smtpServer: text('smtp_server'), // new
    smtpPort: integer('smtp_port'), // new
    smtpUseSsl: boolean('smtp_use_ssl'), // new
    uidValidity: bigint('uid_validity', { mode: 'number' }), // new: IMAP cursor
    lastUid: bigint('last_uid', { mode: 'number' }), // new
    highestModseq: text('highest_modseq'), // new: a 63-bit value, kept as text
    consecutiveFailures: integer('consecutive_failures').notNull().default(0), // new
    nextSyncAt: tstz('next_sync_at'), // new: back-off
    syncLeaseUntil: tstz('sync_lease_until'), // new: per-integration lease (an upper bound)
    syncLeaseHolder: text('sync_lease_holder'), // new: the cron_runs id holding it; free once that run stops beating
    // new: OAuth 2.0 sign-in (XOAUTH2) for mailboxes that refuse passwords; the contract with the
    // web app that stores the grant is docs/oauth-mailboxes.md. Password mailboxes keep 'password'.
    authMethod: text('auth_method').notNull().default('password'), // password | oauth2
    oauthProvider: text('oauth_provider'), // microsoft | google | generic
    oauthRefreshToken: text('oauth_refresh_token'), // Fernet, same scheme as email_password
    oauthAccessToken: text('oauth_access_token'), // Fernet
    oauthAccessTokenExpiresAt: tstz('oauth_access_token_expires_at'),
    oauthScopes: text('oauth_scopes'), // space-separated, as granted
    // new: how fast this mailbox's server delivers (bytes/s, measured by previous runs); sizes the
    // next run's segments so a slow link commits small ones and advances every run (docs/inbox-sync.md)
    syncBytesPerSec: integer('sync_bytes_per_sec'),
    // new: the last run that moved the cursor (stored messages or skipped known ones): /cron/status
    // shows a mailbox that stopped advancing
    lastProgressAt: tstz('last_progress_at'),
    createdAt: tstz('created_at').notNull().defaultNow(),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    index('inbox_integrations_company_idx').on(t.companyId),
    check('inbox_integrations_auth_method', sql`${t.authMethod} in ('password', 'oauth2')`),
    check('inbox_integrations_oauth_provider', sql`${t.oauthProvider} is null or ${t.oauthProvider} in ('microsoft', 'google', 'generic')`),
  ],
);

export const conversations = pgTable(
  'conversations',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id),
    clientId: integer('client_id').references(() => clients.id),
    subject: text('subject'),
    status: text('status').notNull().default('À répondre'),
    source: text('source').notNull().default('email'),
    folderId: integer('folder_id'), // inbox folders are out of scope; kept as a plain id
    unreadCount: integer('unread_count').notNull().default(0),
    lastMessageAt: tstz('last_message_at'),
    createdAt: tstz('created_at').notNull().defaultNow(),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
    // new: set when a job creates the conversation (e.g. `followups:client:<id>`); unique per company,
    // so two invocations creating "the client's conversation" at the same instant get one row
    threadKey: text('thread_key'),
  },
  (t) => [
    index('conversations_company_client_idx').on(t.companyId, t.clientId, t.lastMessageAt),
    // foreign-key index: account deletion removes parents in bulk (docs/account-deletions.md), and each removed parent row
    // is checked against this column; without it every check scans the whole table
    index('conversations_client_idx').on(t.clientId),
    uniqueIndex('conversations_thread_key')
      .on(t.companyId, t.threadKey)
      .where(sql`${t.threadKey} is not null`),
  ],
);

export const inboxMessages = pgTable(
  'inbox_messages',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    conversationId: integer('conversation_id')
      .notNull()
      .references(() => conversations.id),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id), // new
    fromName: text('from_name').notNull(),
    fromEmail: text('from_email'),
    content: text('content').notNull(),
    source: text('source').notNull().default('email'),
    isFromClient: boolean('is_from_client').notNull().default(true),
    read: boolean('read').notNull().default(false),
    externalId: text('external_id'), // normalised Message-ID, or the fallback content hash
    externalMetadata: jsonb('external_metadata'),
    inReplyTo: text('in_reply_to'), // new
    sentAt: tstz('sent_at'), // new: the Date header
    // new: what kind of mail this is (lib/mime/kinds.ts MESSAGE_KINDS, docs/inbox-sync.md):
    // person | auto_reply | bounce | report | list | automated. Rows imported before it existed are 'person'.
    kind: text('kind').notNull().default('person'),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    check('inbox_messages_kind_check', sql`${t.kind} in ('person', 'auto_reply', 'bounce', 'report', 'list', 'automated')`),
    uniqueIndex('inbox_messages_external_key')
      .on(t.companyId, t.externalId)
      .where(sql`${t.externalId} is not null`),
    index('inbox_messages_conversation_idx').on(t.conversationId),
    // the delivery-report sweep after each sync reads only these (docs/bounces.md)
    index('inbox_messages_reports_idx')
      .on(t.companyId, t.createdAt)
      .where(sql`${t.kind} in ('bounce', 'auto_reply')`),
  ],
);

export const messageAttachments = pgTable(
  'message_attachments',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    messageId: integer('message_id')
      .notNull()
      .references(() => inboxMessages.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    fileType: text('file_type').notNull().default('other'),
    mimeType: text('mime_type'),
    fileSize: integer('file_size').notNull().default(0),
    content: bytea('content'), // new
    skippedReason: text('skipped_reason'), // new
  },
  (t) => [index('message_attachments_message_idx').on(t.messageId)],
);

/** new: a message that could not be parsed or stored; recorded once and skipped (docs/inbox-sync.md). */
export const inboxPoisonMessages = pgTable(
  'inbox_poison_messages',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id),
    integrationId: integer('integration_id')
      .notNull()
      .references(() => inboxIntegrations.id),
    uidValidity: bigint('uid_validity', { mode: 'number' }).notNull(),
    uid: bigint('uid', { mode: 'number' }).notNull(),
    error: text('error').notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('inbox_poison_messages_key').on(t.integrationId, t.uidValidity, t.uid),
    index('inbox_poison_messages_company_idx').on(t.companyId), // account deletion deletes by company
  ],
);
