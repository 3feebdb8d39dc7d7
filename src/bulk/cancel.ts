import type { BatchRecord, Store } from '../db/store.js';
import { AppError } from '../errors.js';
import { CANCELLABLE } from './status.js';

/**
 * What a running batch knows about a cancel asked for on any instance: the flag in the
 * database, as every commit of the run's rows saw it (`saw`), or read when nothing was
 * committed since (`refresh`).
 */
export function watchCancel(store: Pick<Store, 'isCancelRequested'>, batchId: string) {
  let requested = false;
  let reading: Promise<boolean> | null = null;
  /** When a commit last read the flag (Date.now()). */
  let sawAt = Number.NEGATIVE_INFINITY;
  return {
    get requested(): boolean {
      return requested;
    },
    /**
     * Reads the flag again, unless a commit read it within `freshMs`; once seen, it stays
     * seen for this run. Rows that land together (at full concurrency) share one read.
     */
    refresh(freshMs = 0): Promise<boolean> {
      if (requested) return Promise.resolve(true);
      if (Date.now() - sawAt <= freshMs) return Promise.resolve(false);
      reading ??= store.isCancelRequested(batchId).then(
        (seen) => {
          reading = null;
          requested ||= seen;
          return requested;
        },
        (error: unknown) => {
          reading = null;
          throw error;
        },
      );
      return reading;
    },
    /** What a commit read of the flag; once seen, it stays seen. */
    saw(cancelRequested: boolean): void {
      requested ||= cancelRequested;
      sawAt = Date.now();
    },
  };
}

export type CancelWatch = ReturnType<typeof watchCancel>;

/** Why a cancelled batch stopped, for its `error`. */
export function cancelledMessage(batchId: string, notAttempted: number): string {
  return (
    `Cancelled on request; ${notAttempted} row(s) not attempted stay pending and nothing was activated. ` +
    `Resume it with POST /batches/${batchId}/resume, or roll it back with POST /batches/${batchId}/rollback.`
  );
}

/**
 * POST /batches/:id/cancel: a queued batch is cancelled at once; a running one is told to
 * stop after the row in flight (its owner, on whichever instance, finishes it as cancelled).
 */
export async function cancelBatch(store: Store, batchId: string, by: string | null): Promise<{ batch: BatchRecord; stopping: boolean }> {
  const result = await store.requestCancel(batchId, by);
  switch (result.kind) {
    case 'cancelled':
      return { batch: result.batch, stopping: false };
    case 'requested':
      return { batch: result.batch, stopping: true };
    case 'not_found':
      throw new AppError('not_found', `No batch with id ${batchId}.`);
    case 'conflict':
      throw new AppError('conflict', `The batch is ${result.status}; only a ${CANCELLABLE.join(' or ')} batch can be cancelled.`, {
        batch_id: batchId,
        batch_status: result.status,
      });
  }
}
