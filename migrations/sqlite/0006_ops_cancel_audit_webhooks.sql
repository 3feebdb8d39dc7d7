CREATE TABLE `batch_audit` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`batch_id` text NOT NULL,
	`action` text NOT NULL,
	`by` text,
	`at` integer NOT NULL,
	FOREIGN KEY (`batch_id`) REFERENCES `batches`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `batch_audit_batch_idx` ON `batch_audit` (`batch_id`,`id`);--> statement-breakpoint
CREATE TABLE `webhook_outbox` (
	`id` text PRIMARY KEY NOT NULL,
	`batch_id` text NOT NULL,
	`type` text NOT NULL,
	`batch` text NOT NULL,
	`created_at` integer NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` integer NOT NULL,
	`delivered_at` integer,
	`abandoned_at` integer,
	`last_error` text,
	`lease_owner` text,
	`lease_until` integer
);
--> statement-breakpoint
CREATE INDEX `webhook_outbox_due_idx` ON `webhook_outbox` (`delivered_at`,`abandoned_at`,`next_attempt_at`);--> statement-breakpoint
ALTER TABLE `batches` ADD `cancel_requested_at` integer;--> statement-breakpoint
ALTER TABLE `batches` ADD `created_by` text;