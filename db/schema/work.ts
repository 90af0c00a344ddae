import { sql } from 'drizzle-orm';
import { boolean, index, integer, pgTable, text, timestamp, unique, uniqueIndex } from 'drizzle-orm/pg-core';
import { companies, users } from './core.js';
import { clients } from './crm.js';
import { appointmentStatus, deliveryState, notificationType, taskStatus } from './enums.js';

const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

export const notifications = pgTable(
  'notifications',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id),
    userId: integer('user_id').references(() => users.id), // null: visible to the whole company
    type: notificationType('type').notNull(),
    title: text('title').notNull(),
    message: text('message').notNull(),
    linkUrl: text('link_url'),
    linkText: text('link_text'),
    sourceType: text('source_type'),
    sourceId: integer('source_id'),
    read: boolean('read').notNull().default(false),
    createdAt: tstz('created_at').notNull().defaultNow(),
    dedupeKey: text('dedupe_key'), // new
  },
  (t) => [
    // idempotency key of every notification a job creates: a re-run never notifies twice; nulls compare equal
    unique('notifications_dedupe_key').on(t.companyId, t.type, t.sourceType, t.sourceId, t.dedupeKey).nullsNotDistinct(),
    index('notifications_user_idx').on(t.userId),
  ],
);

export const tasks = pgTable(
  'tasks',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id),
    title: text('title').notNull(),
    assignedToId: integer('assigned_to_id').references(() => users.id),
    status: taskStatus('status').notNull().default('A_FAIRE'),
    priority: text('priority').notNull().default('normal'), // normal | high | critical | urgent
    dueDate: tstz('due_date'),
    completedAt: tstz('completed_at'),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('tasks_company_due_idx').on(t.companyId, t.dueDate),
    // foreign-key index: account deletion removes parents in bulk (docs/account-deletions.md), and each removed parent row
    // is checked against this column; without it every check scans the whole table
    index('tasks_assigned_to_idx').on(t.assignedToId),
  ],
);

export const appointmentTypes = pgTable(
  'appointment_types',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id),
    name: text('name').notNull(),
    durationMinutes: integer('duration_minutes').notNull().default(30),
  },
  (t) => [index('appointment_types_company_idx').on(t.companyId)],
); // account deletion deletes by company

export const appointments = pgTable(
  'appointments',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id),
    clientId: integer('client_id')
      .notNull()
      .references(() => clients.id),
    typeId: integer('type_id')
      .notNull()
      .references(() => appointmentTypes.id),
    employeeId: integer('employee_id').references(() => users.id),
    startDateTime: tstz('start_date_time').notNull(),
    endDateTime: tstz('end_date_time'),
    status: appointmentStatus('status').notNull().default('SCHEDULED'),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('appointments_start_idx').on(t.startDateTime),
    index('appointments_company_idx').on(t.companyId),
    // foreign-key index: account deletion removes parents in bulk (docs/account-deletions.md), and each removed parent row
    // is checked against this column; without it every check scans the whole table
    index('appointments_client_idx').on(t.clientId),
    index('appointments_type_idx').on(t.typeId),
    index('appointments_employee_idx').on(t.employeeId),
  ],
);

/** new: one row per reminder email, claimed before sending, so it is sent at most once (docs/sending.md). */
export const appointmentReminders = pgTable(
  'appointment_reminders',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id),
    appointmentId: integer('appointment_id')
      .notNull()
      .references(() => appointments.id, { onDelete: 'cascade' }),
    hoursBefore: integer('hours_before').notNull(),
    startDateTime: tstz('start_date_time').notNull(),
    claimedAt: tstz('claimed_at').notNull().defaultNow(),
    sentAt: tstz('sent_at'),
    delivery: deliveryState('delivery').notNull().default('sending'),
    messageId: text('message_id'),
    error: text('error'),
    // new: owner run and hand-over to SMTP of the claim (docs/sending.md)
    claimedBy: text('claimed_by'),
    handedAt: tstz('handed_at'),
  },
  (t) => [
    uniqueIndex('appointment_reminders_key').on(t.appointmentId, t.hoursBefore, t.startDateTime),
    index('appointment_reminders_company_idx').on(t.companyId), // account deletion deletes by company
    index('appointment_reminders_sending_idx')
      .on(t.claimedAt)
      .where(sql`${t.delivery} = 'sending'`),
    // a bounce names the Message-ID it returns (docs/bounces.md)
    index('appointment_reminders_message_id_idx')
      .on(t.messageId)
      .where(sql`${t.messageId} is not null`),
  ],
);
