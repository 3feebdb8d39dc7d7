ALTER TABLE `batches` ADD `lease_owner` text;--> statement-breakpoint
ALTER TABLE `batches` ADD `lease_expires_at` integer;--> statement-breakpoint
ALTER TABLE `batches` ADD `fence` integer DEFAULT 0 NOT NULL;