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
  | { type: 'activated' }
  | {
      type: 'row';
      row: number;
      status: RowStatus;
      hospitalId: number | null;
      errorMessage: string | null;
      attempts: number;
      progress: ProgressRecord | null;
    };
