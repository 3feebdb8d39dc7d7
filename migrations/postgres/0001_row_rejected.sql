ALTER TABLE "batch_rows" ADD COLUMN "rejected" boolean DEFAULT false NOT NULL;--> statement-breakpoint
-- Rows the directory refused before this column existed: their message says so.
UPDATE "batch_rows" SET "rejected" = true WHERE "status" = 'failed' AND "error_message" LIKE 'Rejected by the directory%';
