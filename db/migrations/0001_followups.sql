CREATE TABLE "followup_creations" (
	"company_id" integer NOT NULL,
	"source_type" text NOT NULL,
	"source_id" integer NOT NULL,
	"type" "followuptype" NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "thread_key" text;--> statement-breakpoint
ALTER TABLE "followup_history" ADD COLUMN "claimed_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "followup_creations" ADD CONSTRAINT "followup_creations_company_id_companies_id_fk" FOREIGN KEY ("company_id") REFERENCES "public"."companies"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "followup_creations_key" ON "followup_creations" USING btree ("company_id","source_type","source_id","type");--> statement-breakpoint
CREATE UNIQUE INDEX "conversations_thread_key" ON "conversations" USING btree ("company_id","thread_key") WHERE "conversations"."thread_key" is not null;--> statement-breakpoint
CREATE INDEX "followup_history_sending_idx" ON "followup_history" USING btree ("claimed_at") WHERE "followup_history"."delivery" = 'sending';