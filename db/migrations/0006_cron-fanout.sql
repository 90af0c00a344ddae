ALTER TABLE "cron_runs" ADD COLUMN "parent_run_id" text;--> statement-breakpoint
ALTER TABLE "cron_runs" ADD COLUMN "fanout" jsonb;--> statement-breakpoint
CREATE INDEX "cron_runs_parent_idx" ON "cron_runs" USING btree ("parent_run_id");