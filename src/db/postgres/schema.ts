import { bigint, bigserial, boolean, index, integer, jsonb, pgTable, primaryKey, text } from 'drizzle-orm/pg-core';
import type { BatchRecord } from '../store.js';
import type { BatchEvent } from '../../bulk/events.js';
import { BATCH_STATUSES, ROW_STATUSES } from '../../bulk/status.js';

// Epoch milliseconds overflow int4: every time is a bigint, read back as a JS number
// (safe until the year 287,396).
const millis = (name: string) => bigint(name, { mode: 'number' });

/** One upload; the same columns as the SQLite schema (src/db/sqlite/schema.ts). */
export const batches = pgTable(
  'batches',
  {
    id: text('id').primaryKey(),
    filename: text('filename').notNull(),
    status: text('status', { enum: BATCH_STATUSES }).notNull(),
    totalRows: integer('total_rows').notNull(),
    createdRows: integer('created_rows').notNull().default(0),
    failedRows: integer('failed_rows').notNull().default(0),
    activated: boolean('activated').notNull().default(false),
    error: text('error'),
    notice: text('notice'),
    idempotencyKey: text('idempotency_key').unique(),
    fileSha256: text('file_sha256').notNull(),
    createdAt: millis('created_at').notNull(),
    startedAt: millis('started_at'),
    completedAt: millis('completed_at'),
    processingMs: millis('processing_ms'),
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: millis('lease_expires_at'),
    fence: integer('fence').notNull().default(0),
    cancelRequestedAt: millis('cancel_requested_at'),
    createdBy: text('created_by'),
  },
  (t) => [index('batches_created_at_id_idx').on(t.createdAt, t.id), index('batches_status_idx').on(t.status)],
);

export const batchRows = pgTable(
  'batch_rows',
  {
    batchId: text('batch_id')
      .notNull()
      .references(() => batches.id, { onDelete: 'cascade' }),
    row: integer('row').notNull(),
    line: integer('line').notNull(),
    name: text('name').notNull(),
    address: text('address').notNull(),
    phone: text('phone'),
    status: text('status', { enum: ROW_STATUSES }).notNull().default('pending'),
    hospitalId: integer('hospital_id'),
    errorMessage: text('error_message'),
    attempts: integer('attempts').notNull().default(0),
    /**
     * The directory batch the row is created in: rows 1–20 of a file in the upload's own id,
     * each further 20 in an id chosen when the upload was admitted (the directory holds at most 20 per batch).
     */
    directoryBatchId: text('directory_batch_id').notNull(),
    /** The directory refused the row as it stands (a 4xx): it is not sent again until edited. */
    rejected: boolean('rejected').notNull().default(false),
    updatedAt: millis('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.batchId, t.row] })],
);

/** The typed domain events, as jsonb; `seq` is the SSE event id. */
export const batchEvents = pgTable(
  'batch_events',
  {
    seq: bigserial('seq', { mode: 'number' }).primaryKey(),
    batchId: text('batch_id')
      .notNull()
      .references(() => batches.id, { onDelete: 'cascade' }),
    type: text('type').notNull(),
    data: jsonb('data').$type<BatchEvent>().notNull(),
    createdAt: millis('created_at').notNull(),
  },
  (t) => [index('batch_events_batch_seq_idx').on(t.batchId, t.seq)],
);

/** Who acted on a batch and when; see the SQLite schema. */
export const batchAudit = pgTable(
  'batch_audit',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    batchId: text('batch_id')
      .notNull()
      .references(() => batches.id, { onDelete: 'cascade' }),
    action: text('action').notNull(),
    by: text('by'),
    at: millis('at').notNull(),
  },
  (t) => [index('batch_audit_batch_idx').on(t.batchId, t.id)],
);

/** Completion webhooks not yet delivered; see the SQLite schema. */
export const webhookOutbox = pgTable(
  'webhook_outbox',
  {
    id: text('id').primaryKey(),
    batchId: text('batch_id').notNull(),
    type: text('type').notNull(),
    batch: jsonb('batch').$type<BatchRecord>().notNull(),
    createdAt: millis('created_at').notNull(),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: millis('next_attempt_at').notNull(),
    deliveredAt: millis('delivered_at'),
    abandonedAt: millis('abandoned_at'),
    lastError: text('last_error'),
    leaseOwner: text('lease_owner'),
    leaseUntil: millis('lease_until'),
  },
  (t) => [index('webhook_outbox_due_idx').on(t.deliveredAt, t.abandonedAt, t.nextAttemptAt)],
);

/**
 * Coordination between instances (shared pacing, per-client counts), not history: a
 * single SQLite process keeps it in memory, so these tables have no SQLite twin and
 * db:copy leaves them out.
 */
export const COORDINATION_TABLES: ReadonlySet<string> = new Set(['directory_holds', 'directory_blocks', 'client_hits']);

/**
 * The directory's pacing, shared by every instance (src/db/postgres/pacing.ts): slot `slot`
 * (0 to limit - 1) of `key` (limit and path), held by request `hold_id` while `free_at`
 * (database clock, epoch ms) is ahead: the bound for a request in flight, its answer + one
 * window once released. The primary key is what caps a key at `limit` holds.
 */
export const directoryHolds = pgTable(
  'directory_holds',
  {
    key: text('key').notNull(),
    slot: integer('slot').notNull(),
    holdId: text('hold_id').notNull(),
    freeAt: millis('free_at').notNull(),
    released: boolean('released').notNull().default(false),
  },
  (t) => [primaryKey({ columns: [t.key, t.slot] }), index('directory_holds_free_at_idx').on(t.freeAt)],
);

/** After a 429: no request for `key` leaves, from any instance, before `blocked_until`. */
export const directoryBlocks = pgTable('directory_blocks', {
  key: text('key').primaryKey(),
  blockedUntil: millis('blocked_until').notNull(),
});

/** Per-client request counts of our own API (express-rate-limit), fixed windows shared by every instance. */
export const clientHits = pgTable(
  'client_hits',
  {
    key: text('key').primaryKey(),
    hits: integer('hits').notNull(),
    resetAt: millis('reset_at').notNull(),
  },
  (t) => [index('client_hits_reset_at_idx').on(t.resetAt)],
);
