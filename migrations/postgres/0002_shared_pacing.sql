CREATE TABLE "client_hits" (
	"key" text PRIMARY KEY NOT NULL,
	"hits" integer NOT NULL,
	"reset_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "directory_blocks" (
	"key" text PRIMARY KEY NOT NULL,
	"blocked_until" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "directory_holds" (
	"key" text NOT NULL,
	"slot" integer NOT NULL,
	"hold_id" text NOT NULL,
	"free_at" bigint NOT NULL,
	"released" boolean DEFAULT false NOT NULL,
	CONSTRAINT "directory_holds_key_slot_pk" PRIMARY KEY("key","slot")
);
--> statement-breakpoint
CREATE INDEX "client_hits_reset_at_idx" ON "client_hits" USING btree ("reset_at");--> statement-breakpoint
CREATE INDEX "directory_holds_free_at_idx" ON "directory_holds" USING btree ("free_at");