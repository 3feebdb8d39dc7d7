ALTER TABLE `batch_rows` ADD `rejected` integer DEFAULT false NOT NULL;--> statement-breakpoint
-- Rows the directory refused before this column existed: their message says so.
UPDATE `batch_rows` SET `rejected` = 1 WHERE `status` = 'failed' AND `error_message` LIKE 'Rejected by the directory%';
