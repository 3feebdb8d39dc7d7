import type { BatchRecord, RowRecord } from '../db/store.js';
import type { ProgressRecord } from './events.js';
import { isCreated, isFailed } from './status.js';

/**
 * Where a running batch is. The ETA extrapolates the time per finished row and is never
 * shorter than the wait the rate limiter already predicts for the rows still to send
 * (other uploads may be queued ahead of them).
 */
export function progressOf(
  batch: Pick<BatchRecord, 'startedAt'>,
  rows: readonly Pick<RowRecord, 'status' | 'row'>[],
  queueWaitMs: (rows: number) => number,
  now = Date.now(),
): ProgressRecord {
  let done = 0;
  let failed = 0;
  let currentRow: number | null = null;
  for (const row of rows) {
    if (isCreated(row)) done += 1;
    else if (isFailed(row)) failed += 1;
    else if (row.status === 'creating' && currentRow === null) currentRow = row.row;
  }
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
    currentRow,
    elapsedMs,
    etaMs,
  };
}
