ALTER TABLE `batches` ADD `notice` text;--> statement-breakpoint
ALTER TABLE `batches` ADD `idempotency_key` text;--> statement-breakpoint
CREATE UNIQUE INDEX `batches_idempotency_key_unique` ON `batches` (`idempotency_key`);