CREATE INDEX "invoices_client_idx" ON "invoices" USING btree ("client_id");--> statement-breakpoint
CREATE INDEX "quotes_client_idx" ON "quotes" USING btree ("client_id");--> statement-breakpoint
CREATE INDEX "conversations_client_idx" ON "conversations" USING btree ("client_id");--> statement-breakpoint
CREATE INDEX "inbox_poison_messages_company_idx" ON "inbox_poison_messages" USING btree ("company_id");--> statement-breakpoint
CREATE INDEX "followup_history_conversation_idx" ON "followup_history" USING btree ("conversation_id");--> statement-breakpoint
CREATE INDEX "followups_client_idx" ON "followups" USING btree ("client_id");--> statement-breakpoint
CREATE INDEX "appointment_reminders_company_idx" ON "appointment_reminders" USING btree ("company_id");--> statement-breakpoint
CREATE INDEX "appointment_types_company_idx" ON "appointment_types" USING btree ("company_id");--> statement-breakpoint
CREATE INDEX "appointments_company_idx" ON "appointments" USING btree ("company_id");--> statement-breakpoint
CREATE INDEX "appointments_client_idx" ON "appointments" USING btree ("client_id");--> statement-breakpoint
CREATE INDEX "appointments_type_idx" ON "appointments" USING btree ("type_id");--> statement-breakpoint
CREATE INDEX "appointments_employee_idx" ON "appointments" USING btree ("employee_id");--> statement-breakpoint
CREATE INDEX "tasks_assigned_to_idx" ON "tasks" USING btree ("assigned_to_id");