ALTER TABLE "batch_rows" ADD COLUMN "directory_batch_id" text;--> statement-breakpoint
-- Every upload so far had at most 20 rows: one directory batch, under the upload's own id.
UPDATE "batch_rows" SET "directory_batch_id" = "batch_id";--> statement-breakpoint
ALTER TABLE "batch_rows" ALTER COLUMN "directory_batch_id" SET NOT NULL;
