import { index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { BATCH_STATUSES, ROW_STATUSES } from '../../bulk/status.js';

/** One upload. Times are epoch milliseconds (UTC; SQLite integers are 64-bit). */
export const batches = sqliteTable(
  'batches',
  {
    id: text('id').primaryKey(),
    filename: text('filename').notNull(),
    status: text('status', { enum: BATCH_STATUSES }).notNull(),
    totalRows: integer('total_rows').notNull(),
    // Kept on the batch (updated with each row, in the same transaction) so the history
    // list reads one table instead of aggregating rows for every batch on the page.
    createdRows: integer('created_rows').notNull().default(0),
    failedRows: integer('failed_rows').notNull().default(0),
    activated: integer('activated', { mode: 'boolean' }).notNull().default(false),
    error: text('error'),
    notice: text('notice'),
    /** The client's Idempotency-Key header: the same key and file get this batch back. */
    idempotencyKey: text('idempotency_key').unique(),
    fileSha256: text('file_sha256').notNull(),
    createdAt: integer('created_at').notNull(),
    startedAt: integer('started_at'),
    completedAt: integer('completed_at'),
    processingMs: integer('processing_ms'),
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: integer('lease_expires_at'),
    fence: integer('fence').notNull().default(0),
    /** Set by POST /batches/:id/cancel while the batch runs; the owner stops after the row in flight. */
    cancelRequestedAt: integer('cancel_requested_at'),
    /** The name of the API key that uploaded it (API_KEYS); null for an unnamed key or none. */
    createdBy: text('created_by'),
  },
  // GET /batches pages newest first by (created_at, id): this index serves both the order
  // and the keyset cursor, so a page costs the same with 10 or 100,000 batches.
  (t) => [index('batches_created_at_id_idx').on(t.createdAt, t.id), index('batches_status_idx').on(t.status)],
);

/** What happened to each CSV row of a batch, in file order. */
export const batchRows = sqliteTable(
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
    rejected: integer('rejected', { mode: 'boolean' }).notNull().default(false),
    updatedAt: integer('updated_at').notNull(),
  },
  // The primary key (batch_id, row) is also the index every report read uses.
  (t) => [primaryKey({ columns: [t.batchId, t.row] })],
);

/**
 * What happened to a batch, in order: the typed domain events of src/bulk/events.ts as
 * JSON (`type` repeats the event's own type for reading without parsing). `seq` is the
 * SSE event id that Last-Event-ID resumes after.
 */
export const batchEvents = sqliteTable(
  'batch_events',
  {
    seq: integer('seq').primaryKey({ autoIncrement: true }),
    batchId: text('batch_id')
      .notNull()
      .references(() => batches.id, { onDelete: 'cascade' }),
    type: text('type').notNull(),
    data: text('data').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [index('batch_events_batch_seq_idx').on(t.batchId, t.seq)],
);

/** Who resumed, rolled back or cancelled a batch, or edited a row, and when (the report's `audit`). */
export const batchAudit = sqliteTable(
  'batch_audit',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    batchId: text('batch_id')
      .notNull()
      .references(() => batches.id, { onDelete: 'cascade' }),
    action: text('action').notNull(),
    by: text('by'),
    at: integer('at').notNull(),
  },
  (t) => [index('batch_audit_batch_idx').on(t.batchId, t.id)],
);

/**
 * Completion webhooks not yet delivered: written in the transaction that finishes the batch,
 * delivered (at least once) by whichever instance leases the row first.
 */
export const webhookOutbox = sqliteTable(
  'webhook_outbox',
  {
    /** The event id receivers de-duplicate on. */
    id: text('id').primaryKey(),
    batchId: text('batch_id').notNull(),
    type: text('type').notNull(),
    /** The batch as it was finished (a BatchRecord as JSON): the event's data. */
    batch: text('batch').notNull(),
    createdAt: integer('created_at').notNull(),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: integer('next_attempt_at').notNull(),
    deliveredAt: integer('delivered_at'),
    abandonedAt: integer('abandoned_at'),
    lastError: text('last_error'),
    leaseOwner: text('lease_owner'),
    leaseUntil: integer('lease_until'),
  },
  (t) => [index('webhook_outbox_due_idx').on(t.deliveredAt, t.abandonedAt, t.nextAttemptAt)],
);
