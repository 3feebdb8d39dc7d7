import type { DirectoryOp } from '../directory/types.js';
import type { BatchStatus, RowStatus } from './status.js';

/** Where a running batch is, as the workflow sees it (the HTTP layer renders it). */
export interface ProgressRecord {
  done: number;
  failed: number;
  pending: number;
  percent: number;
  currentRow: number | null;
  elapsedMs: number;
  etaMs: number | null;
}

/**
 * What happened to a batch, in order. The store keeps these typed events (not the JSON a
 * client is sent), so the wire format can change without migrating stored rows; the HTTP
 * layer (src/http/presenter.ts) turns each into a server-sent event.
 */
export type BatchEvent =
  | { type: 'status'; status: BatchStatus; error: string | null }
  /**
   * Activation landed: for one directory batch of a split upload (`directoryBatchId`), or,
   * without it, for the whole upload (every directory batch is active).
   */
  | { type: 'activated'; directoryBatchId?: string }
  | {
      type: 'row';
      row: number;
      status: RowStatus;
      hospitalId: number | null;
      errorMessage: string | null;
      attempts: number;
      progress: ProgressRecord | null;
    }
  /**
   * A directory call is waiting before it tries again (a failed attempt's backoff, or a rate
   * limit), so a person watching sees why nothing moves. `row` is null for batch-wide calls
   * (wake, activate, reading or deleting the batch); `retryAt` is when the next try goes out.
   */
  | {
      type: 'directory_wait';
      row: number | null;
      op: DirectoryOp;
      reason: 'retry' | 'rate_limited';
      attempt: number;
      status: number | null;
      message: string;
      retryAt: number;
    };
