ALTER TABLE "inbox_integrations" ADD COLUMN "sync_bytes_per_sec" integer;--> statement-breakpoint
ALTER TABLE "inbox_integrations" ADD COLUMN "last_progress_at" timestamp with time zone;