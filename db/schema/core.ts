import { boolean, index, integer, jsonb, numeric, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { subscriptionPlan, subscriptionStatus } from './enums.js';

const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

export const companies = pgTable('companies', {
  id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
  code: text('code').notNull().unique(),
  name: text('name').notNull(),
  slug: text('slug').unique(),
  isActive: boolean('is_active').notNull().default(true),
  createdAt: tstz('created_at').notNull().defaultNow(),
});

export const companySettings = pgTable('company_settings', {
  id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
  companyId: integer('company_id')
    .notNull()
    .unique()
    .references(() => companies.id),
  settings: jsonb('settings').notNull().default({}),
  createdAt: tstz('created_at').notNull().defaultNow(),
  updatedAt: tstz('updated_at').notNull().defaultNow(),
});

export const users = pgTable(
  'users',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    email: text('email').notNull().unique(),
    fullName: text('full_name'),
    role: text('role').notNull().default('user'), // super_admin | owner | user (a plain string in the original)
    companyId: integer('company_id').references(() => companies.id),
    isActive: boolean('is_active').notNull().default(true),
    deletionRequestedAt: tstz('deletion_requested_at'),
    deletionScheduledAt: tstz('deletion_scheduled_at'),
    deletionReminderSentAt: tstz('deletion_reminder_sent_at'), // new
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [index('users_company_id_idx').on(t.companyId), index('users_deletion_scheduled_at_idx').on(t.deletionScheduledAt)],
);

export const subscriptions = pgTable(
  'subscriptions',
  {
    id: integer('id').primaryKey().generatedByDefaultAsIdentity(),
    companyId: integer('company_id')
      .notNull()
      .references(() => companies.id),
    plan: subscriptionPlan('plan').notNull().default('STARTER'),
    status: subscriptionStatus('status').notNull().default('TRIALING'),
    stripeSubscriptionId: text('stripe_subscription_id').unique(),
    trialEnd: tstz('trial_end'),
    amount: numeric('amount', { precision: 10, scale: 2 }).notNull().default('0'),
  },
  (t) => [uniqueIndex('subscriptions_company_id_key').on(t.companyId)],
);
