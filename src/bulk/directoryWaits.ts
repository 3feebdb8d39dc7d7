import { LeaseLostError, type Claim, type Store } from '../db/store.js';
import type { DirectoryWait } from '../directory/types.js';
import type { Logger } from '../logger.js';

/**
 * Records every wait of the directory client as a `directory_wait` event of the batch, under
 * the run's claim, so the page and the CLI can say "the directory answered 503; trying again
 * in 4 s" instead of standing still. The write is not awaited by the call that waits (the
 * wait is what it reports); `flush()` lets the workflow make sure a wait is stored before
 * the outcome that follows it, so a stream never shows them the other way round.
 */
export interface WaitRecorder {
  /** The `onWait` to pass in a directory call's context; `row` is null for batch-wide calls. */
  onWait(row: number | null): (wait: DirectoryWait) => void;
  /** Resolves once every wait recorded so far is stored (or its write has failed and been logged). */
  flush(): Promise<void>;
}

/** `after`: a write the waits must come after in the stream (the run's start), whatever becomes of it. */
export function recordWaits(deps: { store: Store; logger: Logger }, claim: Claim, after: Promise<unknown> = Promise.resolve()): WaitRecorder {
  let written: Promise<void> = after.then(
    () => undefined,
    () => undefined,
  );
  return {
    onWait: (row) => (wait) => {
      const event = {
        type: 'directory_wait' as const,
        row,
        op: wait.op,
        reason: wait.reason,
        attempt: wait.attempt,
        status: wait.status,
        message: wait.message,
        retryAt: Date.now() + wait.delayMs,
      };
      // One after another, so the stream shows them in the order they happened.
      written = written.then(() =>
        deps.store.updateBatch(claim, {}, [event]).catch((error: unknown) => {
          // A stale claim: the next fenced write of the run stops it; this one only reported.
          if (error instanceof LeaseLostError) return;
          deps.logger.warn('directory wait not recorded', { batch_id: claim.batchId, row, error: String(error) });
        }),
      );
    },
    flush: () => written,
  };
}
