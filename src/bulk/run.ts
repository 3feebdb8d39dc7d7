import type { Config } from '../config.js';
import type { BatchSnapshot, Claim, RowChange, RowPatch, RowRecord, Store } from '../db/store.js';
import type { DirectoryClient } from '../directory/client.js';
import type { Lifecycle } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { CancelWatch } from './cancel.js';
import type { WaitRecorder } from './directoryWaits.js';
import type { BatchEvent } from './events.js';
import { progressOf } from './progress.js';

/**
 * What one run of a claimed batch carries, and the small steps every part of the workflow
 * shares: writing a row (and its event), reading the outcome, waiting unless stopped.
 */
export interface ProcessDeps {
  store: Store;
  directory: DirectoryClient;
  logger: Logger;
  lifecycle: Lifecycle;
  /** This process, as the owner of the batches it runs. */
  instanceId: string;
  /** Counts row outcomes (GET /metrics). */
  metrics?: Pick<Metrics, 'rowOutcome'>;
  config: Pick<
    Config,
    | 'CIRCUIT_FAILURE_THRESHOLD'
    | 'ON_FAILURE'
    | 'SHUTDOWN_GRACE_MS'
    | 'UPSTREAM_CONCURRENCY'
    | 'UPSTREAM_MAX_ATTEMPTS'
    | 'UPSTREAM_SETTLE_MS'
    | 'MAX_ACTIVE_BATCHES'
    | 'BATCH_LEASE_MS'
    | 'AUTO_RESUME'
  >;
}

/** A batch, its rows and its audit trail as they stand, read in one snapshot: what every workflow step answers with. */
export type BatchOutcome = BatchSnapshot;

/** One run of a claimed batch: the claim that fences its writes, and its rows as last written. */
export interface Run {
  deps: ProcessDeps;
  claim: Claim;
  startedAt: number;
  rows: RowRecord[];
  /** Records the directory client's waits as `directory_wait` events. */
  waits: WaitRecorder;
  /** A cancel asked for on any instance; read between rows. */
  cancel: CancelWatch;
  /** Row changes on their way to the store (see writeRow). */
  commits: RowCommits;
}

export const STOPPED = Symbol('stopped');

/**
 * Writes one row's change to the run's copy at once and to the store with the next group
 * commit (see rowCommits); a `row` event when it is an outcome. Resolves once stored.
 */
export async function writeRow(current: Run, rowNumber: number, patch: RowPatch, announce = false): Promise<RowRecord> {
  const index = current.rows.findIndex((row) => row.row === rowNumber);
  const updated: RowRecord = { ...current.rows[index]!, ...patch, updatedAt: Date.now() };
  current.rows[index] = updated;
  await current.commits.add({ row: rowNumber, patch }, announce ? [rowEvent(current, updated)] : []);
  return updated;
}

export type RowCommits = ReturnType<typeof rowCommits>;

/**
 * Group commit of a run's row changes: a change waits for the previous commit and for the
 * rest of the event loop's turn, and goes in one transaction with every change made
 * meanwhile, so 20 answers landing together cost one or two transactions, not 20 in a queue,
 * and a row's outcome and the next row's `creating` share one. Each change is stored before
 * its caller's promise resolves (a stop or a crash loses none it was told of), in the order
 * made; a wait the directory client reported is stored before the outcome after it. Each
 * commit tells `cancel` whether a cancel has been asked for.
 */
export function rowCommits(store: Pick<Store, 'commitRows'>, claim: Claim, waits: Pick<WaitRecorder, 'flush'>, cancel: Pick<CancelWatch, 'saw'>) {
  let next: { changes: RowChange[]; events: BatchEvent[]; written: Promise<void> } | null = null;
  let previous: Promise<unknown> = Promise.resolve();
  return {
    add(change: RowChange, events: BatchEvent[]): Promise<void> {
      if (!next) {
        const group: { changes: RowChange[]; events: BatchEvent[]; written: Promise<void> } = { changes: [], events: [], written: Promise.resolve() };
        // After the previous commit, and after the I/O callbacks of this turn of the event
        // loop: the answers that arrived together (all in one poll phase) join this group.
        group.written = previous.then(async () => {
          await new Promise((resolve) => setImmediate(resolve));
          if (next === group) next = null;
          await waits.flush();
          cancel.saw((await store.commitRows(claim, group.changes, group.events)).cancelRequested);
        });
        previous = group.written.catch(() => undefined);
        next = group;
      }
      next.changes.push(change);
      next.events.push(...events);
      return next.written;
    },
  };
}

export function rowEvent(current: Run, row: RowRecord, withProgress = true): BatchEvent {
  return {
    type: 'row',
    row: row.row,
    status: row.status,
    hospitalId: row.hospitalId,
    errorMessage: row.errorMessage,
    attempts: row.attempts,
    progress: withProgress ? progressOf({ startedAt: current.startedAt }, current.rows, current.deps.directory.estimatedCreateWaitMs) : null,
  };
}

/** The batch as it stands; batches are never deleted, so one that was claimed or edited is there. */
export async function outcome(store: Store, batchId: string): Promise<BatchOutcome> {
  return (await store.findReport(batchId))!;
}

/** Waits for `work`, unless a shutdown begins and the grace period runs out first. */
export async function unlessStopped<T>({ lifecycle, config }: ProcessDeps, work: Promise<T>): Promise<T | typeof STOPPED> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<typeof STOPPED>((resolve) => {
    onAbort = () => {
      timer = setTimeout(() => resolve(STOPPED), config.SHUTDOWN_GRACE_MS);
    };
    if (lifecycle.signal.aborted) onAbort();
    else lifecycle.signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, stopped]);
  } finally {
    clearTimeout(timer);
    if (onAbort) lifecycle.signal.removeEventListener('abort', onAbort);
  }
}
