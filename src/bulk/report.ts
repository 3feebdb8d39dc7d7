import type { BatchRecord, RowRecord } from '../db/schema.js';

/** The per-row report users get from the upload and from GET /batches/:id. */
export function toReport(batch: BatchRecord, rows: RowRecord[]) {
  return {
    ...toSummary(batch),
    processing_time_seconds: batch.processingMs === null ? null : Math.round(batch.processingMs) / 1000,
    error: batch.error,
    notice: batch.notice,
    hospitals: rows.map((row) => ({
      row: row.row,
      hospital_id: row.hospitalId,
      name: row.name,
      address: row.address,
      phone: row.phone,
      status: row.status,
      error_message: row.errorMessage,
      attempts: row.attempts,
    })),
  };
}

export type BatchReport = ReturnType<typeof toReport>;

/** One line of the history list. */
export function toSummary(batch: BatchRecord) {
  return {
    batch_id: batch.id,
    filename: batch.filename,
    status: batch.status,
    total_hospitals: batch.totalRows,
    processed_hospitals: batch.createdRows,
    failed_hospitals: batch.failedRows,
    batch_activated: batch.activated,
    created_at: iso(batch.createdAt),
    completed_at: iso(batch.completedAt),
  };
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
