/**
 * The one state machine of a batch and of its rows: every status, which changes are
 * allowed, and what each status means. Every status change in the store goes through
 * `assertTransition` as a guarded update (`… WHERE status IN (from)`), so two processes
 * racing for one batch cannot both win.
 */
export const BATCH_STATUSES = ['pending', 'processing', 'completed', 'failed', 'interrupted', 'rolled_back', 'cancelled'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

/**
 * `creating` marks a row whose create is on the wire: if the process dies then, the row
 * becomes `unknown` (it may exist upstream) instead of pretending it was never sent.
 */
export const ROW_STATUSES = ['pending', 'creating', 'created', 'created_and_activated', 'failed', 'unknown', 'deleted'] as const;
export type RowStatus = (typeof ROW_STATUSES)[number];

/**
 * Allowed batch transitions. `processing` is also the state a rollback holds while it
 * deletes upstream; a rollback that fails puts the batch back where it was. A queued
 * batch is cancelled at once; a running one by its owner, after the row in flight.
 */
const TRANSITIONS: Record<BatchStatus, readonly BatchStatus[]> = {
  pending: ['processing', 'interrupted', 'cancelled'],
  processing: ['completed', 'failed', 'interrupted', 'rolled_back', 'processing', 'cancelled'],
  completed: ['processing'],
  failed: ['processing'],
  interrupted: ['processing'],
  rolled_back: [],
  cancelled: ['processing'],
};

export function canTransition(from: BatchStatus, to: BatchStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Throws (a bug, not a user error) if any of `from` may not move to `to`. */
export function assertTransition(from: readonly BatchStatus[], to: BatchStatus): void {
  const bad = from.filter((status) => !canTransition(status, to));
  if (bad.length > 0) throw new Error(`Batch status cannot change from ${bad.join(', ')} to ${to}.`);
}

/** Work is under way (or about to be): counted against MAX_ACTIVE_BATCHES, shown with progress. */
export const RUNNING: readonly BatchStatus[] = ['pending', 'processing'];
/** Nothing more will happen without a person (or automatic resume) acting. */
export const FINISHED: readonly BatchStatus[] = ['completed', 'failed', 'interrupted', 'rolled_back', 'cancelled'];
/** What a resume may start from. */
export const RESUMABLE: readonly BatchStatus[] = ['failed', 'interrupted', 'cancelled'];
/** Batches whose rows a person may edit: not running (no run would see the change), not rolled back. */
export const ROW_EDITABLE_BATCHES: readonly BatchStatus[] = RESUMABLE;
/**
 * Rows a person may edit: known not to exist upstream. An `unknown` row may exist: a resume
 * settles it first. A row being sent, created or deleted is past editing here.
 */
export const EDITABLE_ROWS: readonly RowStatus[] = ['pending', 'failed'];
/** What a rollback may start from. */
export const ROLLBACKABLE: readonly BatchStatus[] = ['failed', 'interrupted', 'completed', 'cancelled'];
/** What a cancel may stop: `pending` at once, `processing` through its owner. */
export const CANCELLABLE: readonly BatchStatus[] = ['pending', 'processing'];
/** Final states announced by a completion webhook (`interrupted` is not final: it is finished automatically or by a resume). */
export const ANNOUNCED: readonly BatchStatus[] = ['completed', 'failed', 'rolled_back', 'cancelled'];

export const isRunning = (status: BatchStatus) => RUNNING.includes(status);
export const isFinished = (status: BatchStatus) => FINISHED.includes(status);

/** Rows that exist in the directory as far as we know. */
export const CREATED_ROWS: readonly RowStatus[] = ['created', 'created_and_activated'];
/** Rows that did not make it (or may not have): counted as failed in the history. */
export const FAILED_ROWS: readonly RowStatus[] = ['failed', 'unknown'];

export const isCreated = (row: { status: RowStatus }) => CREATED_ROWS.includes(row.status);
export const isFailed = (row: { status: RowStatus }) => FAILED_ROWS.includes(row.status);
