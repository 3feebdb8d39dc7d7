-- SQLite adds a NOT NULL column only with a default; every row written since has its own value.
ALTER TABLE `batch_rows` ADD `directory_batch_id` text NOT NULL DEFAULT '';--> statement-breakpoint
-- Every upload so far had at most 20 rows: one directory batch, under the upload's own id.
UPDATE `batch_rows` SET `directory_batch_id` = `batch_id`;
