import type { z } from 'zod';
import type { BatchRecord, RowRecord } from '../db/schema.js';
import type { BatchReportSchema, BatchSummarySchema, ProgressSchema, RowReportSchema } from '../http/schemas.js';

// The response shapes are the documented schemas: a builder that drifts from them does not compile.
export type BatchReport = z.infer<typeof BatchReportSchema>;
export type BatchSummary = z.infer<typeof BatchSummarySchema>;
export type RowReport = z.infer<typeof RowReportSchema>;
export type Progress = z.infer<typeof ProgressSchema>;

/** The per-row report users get from the upload and from GET /batches/:id. */
export function toReport(batch: BatchRecord, rows: RowRecord[]): BatchReport {
  return {
    ...toSummary(batch),
    processing_time_seconds: batch.processingMs === null ? null : Math.round(batch.processingMs) / 1000,
    error: batch.error,
    notice: batch.notice,
    hospitals: rows.map((row): RowReport => ({
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

/** One line of the history list. */
export function toSummary(batch: BatchRecord): BatchSummary {
  return {
    batch_id: batch.id,
    filename: batch.filename,
    status: batch.status,
    total_hospitals: batch.totalRows,
    processed_hospitals: batch.createdRows,
    failed_hospitals: batch.failedRows,
    batch_activated: batch.activated,
    created_at: new Date(batch.createdAt).toISOString(),
    completed_at: iso(batch.completedAt),
  };
}

/**
 * Where a running batch is. The ETA extrapolates the time per finished row and is never
 * shorter than the wait the rate limiter already predicts for the rows still to send
 * (other uploads may be queued ahead of them).
 */
export function toProgress(batch: BatchRecord, rows: RowRecord[], queueWaitMs: (rows: number) => number, now = Date.now()): Progress {
  const done = rows.filter((row) => row.status === 'created' || row.status === 'created_and_activated').length;
  const failed = rows.filter((row) => row.status === 'failed' || row.status === 'unknown').length;
  const pending = rows.length - done - failed;
  const elapsedMs = batch.startedAt === null ? 0 : Math.max(0, now - batch.startedAt);
  const finished = done + failed;
  const perRowMs = finished > 0 ? elapsedMs / finished : null;
  const waitMs = pending > 0 ? queueWaitMs(pending) : 0;
  const etaMs = pending === 0 ? 0 : perRowMs === null ? (waitMs > 0 ? waitMs : null) : Math.max(pending * perRowMs, waitMs + perRowMs);
  return {
    done,
    failed,
    pending,
    percent: rows.length === 0 ? 100 : Math.round((finished / rows.length) * 100),
    current_row: rows.find((row) => row.status === 'creating')?.row ?? null,
    elapsed_seconds: Math.round(elapsedMs / 100) / 10,
    eta_seconds: etaMs === null ? null : Math.round(etaMs / 100) / 10,
  };
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
