CREATE TABLE "batch_audit" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"batch_id" text NOT NULL,
	"action" text NOT NULL,
	"by" text,
	"at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_outbox" (
	"id" text PRIMARY KEY NOT NULL,
	"batch_id" text NOT NULL,
	"type" text NOT NULL,
	"batch" jsonb NOT NULL,
	"created_at" bigint NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" bigint NOT NULL,
	"delivered_at" bigint,
	"abandoned_at" bigint,
	"last_error" text,
	"lease_owner" text,
	"lease_until" bigint
);
--> statement-breakpoint
ALTER TABLE "batches" ADD COLUMN "cancel_requested_at" bigint;--> statement-breakpoint
ALTER TABLE "batches" ADD COLUMN "created_by" text;--> statement-breakpoint
ALTER TABLE "batch_audit" ADD CONSTRAINT "batch_audit_batch_id_batches_id_fk" FOREIGN KEY ("batch_id") REFERENCES "public"."batches"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "batch_audit_batch_idx" ON "batch_audit" USING btree ("batch_id","id");--> statement-breakpoint
CREATE INDEX "webhook_outbox_due_idx" ON "webhook_outbox" USING btree ("delivered_at","abandoned_at","next_attempt_at");