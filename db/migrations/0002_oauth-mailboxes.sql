ALTER TYPE "public"."notificationtype" ADD VALUE 'INBOX_INTEGRATION_NEEDS_REAUTH';--> statement-breakpoint
ALTER TABLE "inbox_integrations" ADD COLUMN "auth_method" text DEFAULT 'password' NOT NULL;--> statement-breakpoint
ALTER TABLE "inbox_integrations" ADD COLUMN "oauth_provider" text;--> statement-breakpoint
ALTER TABLE "inbox_integrations" ADD COLUMN "oauth_refresh_token" text;--> statement-breakpoint
ALTER TABLE "inbox_integrations" ADD COLUMN "oauth_access_token" text;--> statement-breakpoint
ALTER TABLE "inbox_integrations" ADD COLUMN "oauth_access_token_expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "inbox_integrations" ADD COLUMN "oauth_scopes" text;--> statement-breakpoint
ALTER TABLE "inbox_integrations" ADD CONSTRAINT "inbox_integrations_auth_method" CHECK ("inbox_integrations"."auth_method" in ('password', 'oauth2'));--> statement-breakpoint
ALTER TABLE "inbox_integrations" ADD CONSTRAINT "inbox_integrations_oauth_provider" CHECK ("inbox_integrations"."oauth_provider" is null or "inbox_integrations"."oauth_provider" in ('microsoft', 'google', 'generic'));