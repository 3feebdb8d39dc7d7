CREATE TABLE `batch_rows` (
	`batch_id` text NOT NULL,
	`row` integer NOT NULL,
	`line` integer NOT NULL,
	`name` text NOT NULL,
	`address` text NOT NULL,
	`phone` text,
	`status` text DEFAULT 'pending' NOT NULL,
	`hospital_id` integer,
	`error_message` text,
	`attempts` integer DEFAULT 0 NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`batch_id`, `row`),
	FOREIGN KEY (`batch_id`) REFERENCES `batches`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `batches` (
	`id` text PRIMARY KEY NOT NULL,
	`filename` text NOT NULL,
	`status` text NOT NULL,
	`total_rows` integer NOT NULL,
	`created_rows` integer DEFAULT 0 NOT NULL,
	`failed_rows` integer DEFAULT 0 NOT NULL,
	`activated` integer DEFAULT false NOT NULL,
	`error` text,
	`file_sha256` text NOT NULL,
	`created_at` integer NOT NULL,
	`started_at` integer,
	`completed_at` integer,
	`processing_ms` integer
);
--> statement-breakpoint
CREATE INDEX `batches_created_at_id_idx` ON `batches` (`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `batches_status_idx` ON `batches` (`status`);