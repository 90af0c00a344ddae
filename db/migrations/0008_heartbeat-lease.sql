ALTER TABLE "inbox_integrations" ADD COLUMN "sync_lease_holder" text;--> statement-breakpoint
ALTER TABLE "cron_runs" ADD COLUMN "heartbeat_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "bounce_mailbox_cursors" ADD COLUMN "lease_holder" text;