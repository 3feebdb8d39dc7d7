import { index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

export const BATCH_STATUSES = ['pending', 'processing', 'completed', 'failed', 'interrupted', 'rolled_back'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

/**
 * `creating` marks a row whose create is on the wire: if the process dies then, start-up
 * turns it into `unknown` (it may exist upstream) instead of pretending it was never sent.
 */
export const ROW_STATUSES = [
  'pending',
  'creating',
  'created',
  'created_and_activated',
  'failed',
  'unknown',
  'deleted',
] as const;
export type RowStatus = (typeof ROW_STATUSES)[number];

/** One upload. Times are epoch milliseconds (UTC); the API renders them as ISO 8601. */
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
    /** Why the batch as a whole stopped (directory unreachable, activation refused…). */
    error: text('error'),
    /** What a resume found out, e.g. that the directory had forgotten the batch. */
    notice: text('notice'),
    /** The client's Idempotency-Key header: the same key and file get this batch back. */
    idempotencyKey: text('idempotency_key').unique(),
    fileSha256: text('file_sha256').notNull(),
    createdAt: integer('created_at').notNull(),
    startedAt: integer('started_at'),
    completedAt: integer('completed_at'),
    processingMs: integer('processing_ms'),
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
    updatedAt: integer('updated_at').notNull(),
  },
  // The primary key (batch_id, row) is also the index every report read uses.
  (t) => [primaryKey({ columns: [t.batchId, t.row] })],
);

export type BatchRecord = typeof batches.$inferSelect;
export type RowRecord = typeof batchRows.$inferSelect;

/**
 * What happened to a batch, in order: one `row` event per row outcome and one `batch` event
 * per state change. Kept in SQLite so GET /batches/:id/events can replay them to a client
 * that connects late or reconnects with Last-Event-ID (the event id is `seq`).
 */
export const batchEvents = sqliteTable(
  'batch_events',
  {
    seq: integer('seq').primaryKey({ autoIncrement: true }),
    batchId: text('batch_id')
      .notNull()
      .references(() => batches.id, { onDelete: 'cascade' }),
    type: text('type', { enum: ['batch', 'row'] }).notNull(),
    /** The event's JSON payload, as sent. */
    data: text('data').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [index('batch_events_batch_seq_idx').on(t.batchId, t.seq)],
);

export type EventRecord = typeof batchEvents.$inferSelect;
