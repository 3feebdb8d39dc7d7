import type { z } from 'zod';
import type { BatchEvent, ProgressRecord } from '../bulk/events.js';
import { directoryBatchesOf, isSplit } from '../bulk/directoryBatches.js';
import type { AuditEntry, BatchRecord, RowRecord } from '../db/store.js';
import type {
  BatchEventSchema,
  BatchReportSchema,
  BatchSummarySchema,
  DirectoryEventSchema,
  ProgressSchema,
  RowEventSchema,
  RowReportSchema,
} from './schemas.js';

/**
 * Records and domain events as the API shows them: the only code that knows the JSON
 * shapes. The types are the documented schemas, so a builder that drifts does not compile.
 */
export type BatchReport = z.infer<typeof BatchReportSchema>;
export type BatchSummary = z.infer<typeof BatchSummarySchema>;
export type RowReport = z.infer<typeof RowReportSchema>;
export type Progress = z.infer<typeof ProgressSchema>;
type RowEventData = z.infer<typeof RowEventSchema>;
type BatchEventData = z.infer<typeof BatchEventSchema>;
type DirectoryEventData = z.infer<typeof DirectoryEventSchema>;

/** The per-row report users get from the upload and from GET /batches/:id. */
export function toReport(batch: BatchRecord, rows: readonly RowRecord[], progress?: ProgressRecord, audit: readonly AuditEntry[] = []): BatchReport {
  // A file of at most 20 rows is one directory batch under the upload's own id: its report stays as it always was.
  const split = isSplit(rows);
  return {
    ...toSummary(batch),
    processing_time_seconds: batch.processingMs === null ? null : Math.round(batch.processingMs) / 1000,
    error: batch.error,
    notice: batch.notice,
    hospitals: rows.map(
      (row): RowReport => ({
        row: row.row,
        hospital_id: row.hospitalId,
        ...(split ? { directory_batch_id: row.directoryBatchId } : {}),
        name: row.name,
        address: row.address,
        phone: row.phone,
        status: row.status,
        error_message: row.errorMessage,
        attempts: row.attempts,
      }),
    ),
    cancel_requested_at: batch.cancelRequestedAt === null ? null : new Date(batch.cancelRequestedAt).toISOString(),
    audit: audit.map((entry) => ({ action: entry.action, by: entry.by, at: new Date(entry.at).toISOString() })),
    ...(progress ? { progress: toProgress(progress) } : {}),
    ...(split
      ? {
          directory_batches: directoryBatchesOf(rows).map((part) => ({
            id: part.id,
            first_row: part.firstRow,
            last_row: part.lastRow,
            activated: part.rows.every((row) => row.status === 'created_and_activated'),
          })),
        }
      : {}),
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
    completed_at: batch.completedAt === null ? null : new Date(batch.completedAt).toISOString(),
    created_by: batch.createdBy,
  };
}

export function toProgress(progress: ProgressRecord): Progress {
  return {
    done: progress.done,
    failed: progress.failed,
    pending: progress.pending,
    percent: progress.percent,
    current_row: progress.currentRow,
    elapsed_seconds: tenths(progress.elapsedMs),
    eta_seconds: progress.etaMs === null ? null : tenths(progress.etaMs),
  };
}

/**
 * A stored domain event as the server-sent event clients receive: its SSE name and `data`.
 * `now` is when it is sent: a directory wait says how long is left from then.
 */
export function toServerSentEvent(
  event: BatchEvent,
  now = Date.now(),
): { name: 'row'; data: RowEventData } | { name: 'batch'; data: BatchEventData } | { name: 'directory'; data: DirectoryEventData } {
  switch (event.type) {
    case 'row':
      return {
        name: 'row',
        data: {
          row: event.row,
          status: event.status,
          hospital_id: event.hospitalId,
          error_message: event.errorMessage,
          attempts: event.attempts,
          ...(event.progress ? { progress: toProgress(event.progress) } : {}),
        },
      };
    case 'status':
      return { name: 'batch', data: { status: event.status, error: event.error } };
    case 'activated':
      return event.directoryBatchId
        ? { name: 'batch', data: { status: 'processing', batch_activated: false, directory_batch_id: event.directoryBatchId, directory_batch_activated: true } }
        : { name: 'batch', data: { status: 'processing', batch_activated: true } };
    case 'directory_wait':
      return {
        name: 'directory',
        data: {
          row: event.row,
          op: event.op,
          reason: event.reason,
          attempt: event.attempt,
          status: event.status,
          message: event.message,
          retry_at: new Date(event.retryAt).toISOString(),
          retry_in_seconds: tenths(Math.max(0, event.retryAt - now)),
        },
      };
  }
}

const tenths = (ms: number) => Math.round(ms / 100) / 10;
