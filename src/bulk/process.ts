import { LeaseLostError, RUN_STARTED, runStart, STOPPED_WHILE_SENDING, type AuditEntry, type Claim, type RowRecord, type RowsChange } from '../db/store.js';
import { DirectoryError, matchRows } from '../directory/client.js';
import { AppError } from '../errors.js';
import { cancelledMessage, watchCancel } from './cancel.js';
import { recordWaits } from './directoryWaits.js';
import type { BatchEvent } from './events.js';
import { isCreated, RESUMABLE, ROLLBACKABLE, type BatchStatus } from './status.js';
import { outcome, rowCommits, STOPPED, unlessStopped, writeRow, type BatchOutcome, type ProcessDeps, type Run } from './run.js';
import { createMissingRows } from './createRows.js';
import { directoryBatchesOf } from './directoryBatches.js';

export type { BatchOutcome, ProcessDeps } from './run.js';

/**
 * Takes a fresh upload through the directory, admitted already claimed and started (at
 * `startedAt`) for this instance: wake it, create each row in file order (committing every
 * outcome as it happens), activate only if every row exists, finish. Throws
 * `directory_unavailable` if the directory never woke.
 */
export async function processBatch(deps: ProcessDeps, held: Claim, startedAt: number): Promise<BatchOutcome> {
  return run(deps, held, startedAt);
}

/** Finishes a `failed`, `interrupted` or `cancelled` batch: reconcile, create what is missing, activate. */
export async function resumeBatch(deps: ProcessDeps, batchId: string, by: string | null = null): Promise<BatchOutcome> {
  return startRun(deps, batchId, RESUMABLE, 'resumed', { maxActive: deps.config.MAX_ACTIVE_BATCHES, audit: { action: 'resume', by } });
}

/** Claims the batch and starts its run in one transaction, then runs it. */
async function startRun(deps: ProcessDeps, batchId: string, from: readonly BatchStatus[], action: string, options: ClaimOptions = {}): Promise<BatchOutcome> {
  const startedAt = Date.now();
  const { claim: held } = await claimWithPrevious(deps, batchId, from, action, { ...options, startedAt });
  return run(deps, held, startedAt);
}

/**
 * Finishes a batch that a stop left unfinished (see src/bulk/takeover.ts), already claimed
 * for this instance: like a resume, it settles with the directory first.
 */
export async function takeOverBatch(deps: ProcessDeps, held: Claim): Promise<BatchOutcome> {
  deps.logger.info('batch taken over to finish it', { batch_id: held.batchId, fence: held.fence });
  return run(deps, held, null);
}

/** Deletes the batch upstream and marks it rolled back; from failed, interrupted, completed or cancelled. */
export async function rollbackBatch(deps: ProcessDeps, batchId: string, by: string | null = null): Promise<BatchOutcome> {
  const { claim: held, previous } = await claimWithPrevious(deps, batchId, ROLLBACKABLE, 'rolled back', { audit: { action: 'rollback', by } });
  // Deleting may take retries: the lease must outlive them, or another instance would
  // take the batch over and create what is being deleted.
  return withLease(deps, held, () => rollBackClaimed(deps, held, previous.status, []));
}

/**
 * Rolls back a batch this instance holds. If the directory refuses, the batch returns to
 * `restoreTo`, announcing `onRestore`, and the refusal is thrown.
 */
async function rollBackClaimed(deps: ProcessDeps, held: Claim, restoreTo: BatchStatus, onRestore: BatchEvent[]): Promise<BatchOutcome> {
  const { batchId } = held;
  const parts = directoryBatchesOf(await deps.store.findRows(batchId));
  const onWait = recordWaits(deps, held).onWait(null);
  for (const [index, part] of parts.entries()) {
    try {
      const deleted = await deps.directory.deleteBatch(part.id, { batchId, onWait });
      deps.logger.info('directory batch deleted', { batch_id: batchId, directory_batch_id: part.id, deleted_count: deleted });
    } catch (error) {
      // What was deleted stays so in the history; a second rollback deletes the rest.
      const gone = parts.slice(0, index).flatMap((done) => done.rows.map((row) => row.row));
      await deps.store.finishBatch(held, restoreTo, {}, onRestore, gone.length > 0 ? { rows: gone, patch: { status: 'deleted' } } : undefined);
      const message = error instanceof Error ? error.message : String(error);
      const detail =
        index === 0
          ? 'The batch was not rolled back; try again later.'
          : `The batch was only partly rolled back: ${index} of its ${parts.length} directory batches (rows 1–${parts[index - 1]!.lastRow}) were deleted; roll it back again later for the rest.`;
      throw new AppError('directory_unavailable', `${message} ${detail}`, { batch_id: batchId }, { cause: error });
    }
  }
  deps.logger.info('batch rolled back', { batch_id: batchId, directory_batches: parts.length });
  await deps.store.finishBatch(held, 'rolled_back', { activated: false, completedAt: Date.now() }, [{ type: 'status', status: 'rolled_back', error: null }], {
    rows: 'all',
    patch: { status: 'deleted' },
  });
  return outcome(deps.store, batchId);
}

interface ClaimOptions {
  /** Refuse (503) when this many batches already run. */
  maxActive?: number;
  /** Who asked for a resume or rollback, recorded with the claim. */
  audit?: Omit<AuditEntry, 'at'>;
  /** The run starts with the claim, at this time (see Store.claimBatch's `start`). */
  startedAt?: number;
}

/** Moves the batch to `processing` for this instance; 404, 409 or 503 saying why not. */
async function claimWithPrevious(deps: ProcessDeps, batchId: string, from: readonly BatchStatus[], action: string, { maxActive, audit, startedAt }: ClaimOptions = {}) {
  const options = { from, owner: deps.instanceId, leaseMs: deps.config.BATCH_LEASE_MS, maxActive, audit, start: startedAt !== undefined };
  const result = await deps.store.claimBatch(batchId, options, startedAt);
  switch (result.kind) {
    case 'claimed':
      return result;
    case 'not_found':
      throw new AppError('not_found', `No batch with id ${batchId}.`);
    case 'full':
      throw tooManyBatches(deps.config.MAX_ACTIVE_BATCHES);
    case 'conflict': {
      const allowed = `${from.slice(0, -1).join(', ')}${from.length > 1 ? ' or ' : ''}${from.at(-1)}`;
      throw new AppError('conflict', `The batch is ${result.status}; only a ${allowed} batch can be ${action}.`, {
        batch_id: batchId,
        batch_status: result.status,
      });
    }
  }
}

export function tooManyBatches(max: number): AppError {
  return new AppError('overloaded', `${max} batches are already running, the most this service takes at once; try again in a minute.`);
}

/**
 * Runs a claimed batch to its end under its lease; a lost lease stops it without another
 * write. `startedAt`: when its claim (or admission) started the run; null: its start is
 * still to write.
 */
async function run(deps: ProcessDeps, held: Claim, startedAt: number | null): Promise<BatchOutcome> {
  try {
    return await withLease(deps, held, () => runClaimed(deps, held, startedAt));
  } catch (error) {
    if (!(error instanceof LeaseLostError)) throw error;
    deps.logger.warn('batch taken over by another instance; this one stops', { batch_id: held.batchId });
    return outcome(deps.store, held.batchId);
  }
}

/** Renews the claim's lease (every third of BATCH_LEASE_MS) for as long as `work` runs. */
async function withLease<T>(deps: ProcessDeps, held: Claim, work: () => Promise<T>): Promise<T> {
  const renew = setInterval(() => {
    deps.store.renewLease(held, deps.config.BATCH_LEASE_MS).catch((error: unknown) => {
      deps.logger.warn('lease renewal failed', { batch_id: held.batchId, error: String(error) });
    });
  }, Math.max(50, Math.floor(deps.config.BATCH_LEASE_MS / 3)));
  try {
    return await work();
  } finally {
    clearInterval(renew);
  }
}

async function runClaimed(deps: ProcessDeps, held: Claim, claimedAt: number | null): Promise<BatchOutcome> {
  const { store, directory } = deps;
  const batchId = held.batchId;
  const startedAt = claimedAt ?? Date.now();
  const started = claimedAt === null ? store.updateBatch(held, runStart(startedAt), [RUN_STARTED]) : Promise.resolve();
  const waits = recordWaits(deps, held, started);
  // The wake-up needs nothing from the history: it goes out while the start is recorded
  // and the rows are read (its waits are stored after the start, so the stream keeps the order).
  const waking = directory.wake({ batchId, onWait: waits.onWait(null) }).then(
    () => null,
    (error: unknown) => error,
  );
  // Read beside the start's write: the start changes nothing of the rows.
  const [rows] = await Promise.all([store.findRows(batchId), started]);
  deps.logger.info('batch started', { batch_id: batchId });
  const cancel = watchCancel(store, batchId);
  const current: Run = { deps, claim: held, startedAt, rows, waits, cancel, commits: rowCommits(store, held, waits, cancel) };

  const woke = await unlessStopped(deps, waking);
  if (woke === STOPPED) return interrupt(current);
  if (woke !== null) {
    const message = woke instanceof Error ? woke.message : String(woke);
    await finish(current, 'failed', message);
    throw new AppError(
      'directory_unavailable',
      `${message} Nothing more was created; the batch is kept and can be resumed with POST /batches/${batchId}/resume.`,
      { batch_id: batchId },
      { cause: woke },
    );
  }

  try {
    // A fresh upload has touched nothing upstream; anything else must be settled first.
    if (current.rows.some((row) => row.status !== 'pending' || row.attempts > 0)) {
      await settled(current);
      await reconcile(current);
    }
  } catch (error) {
    if (!(error instanceof DirectoryError)) throw error;
    return finish(current, 'failed', `Could not check the batch in the directory before resuming: ${error.message}`);
  }

  const stop = await createMissingRows(current);
  if (stop.kind === 'interrupted') return interrupt(current);
  // Checked once more before activation: a cancel asked for while the last rows were sent
  // stops it here. The commit of the last outcomes read it after the last answer: that read
  // is as good as another one now, unless it was longer ago than a round trip or two.
  if (stop.kind === 'cancelled' || (await current.cancel.refresh(CANCEL_READ_FRESH_MS))) return cancelled(current);
  if (stop.kind === 'circuit_open') return stopSending(current, stop.notAttempted, stop.failures);

  const missing = current.rows.filter((row) => !isCreated(row)).length;
  if (missing > 0) return failed(current, `${missing} of ${current.rows.length} rows were not created; the batch was not activated.`);
  const activation = await activate(current, stop.allAnswered);
  if (activation === STOPPED) return interrupt(current);
  if ('failed' in activation) return failed(current, activation.failed);
  deps.logger.info('batch activated', { batch_id: batchId, activated_count: current.rows.length });
  return finish(current, 'completed', null, { activated: activation });
}

/** How recent a commit's read of the cancel flag stands in for a read before activation. */
const CANCEL_READ_FRESH_MS = 20;

/** The record of the last directory batch activated, which the run's finish writes. */
interface LastActivated {
  rows?: RowsChange;
  events: BatchEvent[];
}

/**
 * Activates each directory batch not yet active, in file order, once every row of every one
 * exists (the caller checked): the directory's own activation, verified when its answer is
 * lost and never sent blindly twice (DirectoryClient.activateBatch). A directory batch counts
 * as active when all its rows are `created_and_activated`, so a resume activates only the rest.
 * Each is recorded as it is activated, but the last, which nothing follows but the finish:
 * its record is returned for the finish's transaction. Returns that, or why one was not activated.
 */
async function activate(current: Run, allAnswered: boolean): Promise<LastActivated | { failed: string } | typeof STOPPED> {
  const { deps, claim: held } = current;
  const parts = directoryBatchesOf(current.rows);
  let last: LastActivated = { events: [] };
  for (const [index, part] of parts.entries()) {
    if (part.rows.every((row) => row.status === 'created_and_activated')) continue;
    const activated = await unlessStopped(
      deps,
      deps.directory
        .activateBatch(part.id, part.rows.map((row) => row.hospitalId!), { batchId: held.batchId, onWait: current.waits.onWait(null) }, { confirmed: allAnswered })
        .catch((error: unknown) => {
          if (error instanceof DirectoryError) return error;
          throw error;
        }),
    );
    if (activated === STOPPED) return STOPPED;
    if (activated instanceof DirectoryError) {
      if (parts.length === 1) return { failed: activated.message };
      const active = index === 0 ? 'none is active' : index === 1 ? 'directory batch 1 is active' : `directory batches 1–${index} are active`;
      return {
        failed: `Directory batch ${index + 1} of ${parts.length} (rows ${part.firstRow}–${part.lastRow}) was not activated: ${activated.message} (${active}; resume the batch to activate the rest).`,
      };
    }
    const rows = part.rows.map((row) => row.row);
    for (const [i, row] of current.rows.entries()) if (rows.includes(row.row)) current.rows[i] = { ...row, status: 'created_and_activated' };
    const record: Required<LastActivated> = {
      rows: { rows: parts.length > 1 ? rows : 'all', patch: { status: 'created_and_activated' } },
      events: parts.length > 1 ? [{ type: 'activated', directoryBatchId: part.id }] : [],
    };
    if (index < parts.length - 1) await deps.store.updateRows(held, record.rows.rows, record.rows.patch, record.events);
    else last = record;
    deps.logger.info('directory batch activated', {
      batch_id: held.batchId,
      directory_batch_id: part.id,
      first_row: part.firstRow,
      last_row: part.lastRow,
      activated_count: activated.activatedCount,
    });
  }
  return last;
}

/**
 * A create cut off by a stop moments ago may still be stored by the directory (CONTRACT.md:
 * a create is stored seconds after it arrives): reading the batch before then would miss
 * it and send the row again. Waits until UPSTREAM_SETTLE_MS have passed since such a row.
 */
async function settled(current: Run): Promise<void> {
  const lastCutOff = Math.max(0, ...current.rows.filter((row) => row.status === 'unknown').map((row) => row.updatedAt));
  const waitMs = lastCutOff + current.deps.config.UPSTREAM_SETTLE_MS - Date.now();
  if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
}

/**
 * Makes the history agree with the directory before a resume: created rows whose hospital
 * is gone (the directory forgets everything when it sleeps) go back to pending; rows not
 * known to be created adopt a matching hospital no other row owns (a create whose answer
 * was lost), as a multiset, so two identical rows never share one hospital.
 */
async function reconcile(current: Run): Promise<void> {
  const { deps, claim: held } = current;
  const batchId = held.batchId;
  const claimed = new Set<number>();
  let upstreamCount = 0;
  let forgotten = 0;
  let adopted = 0;
  // Each directory batch is its own batch upstream: read, compare and adopt one at a time.
  for (const part of directoryBatchesOf(current.rows)) {
    const upstream = await deps.directory.getBatch(part.id, { batchId, onWait: current.waits.onWait(null) });
    upstreamCount += upstream.length;
    const present = new Set(upstream.map((h) => h.id));
    for (const row of part.rows.filter(isCreated)) {
      if (present.has(row.hospitalId!)) {
        claimed.add(row.hospitalId!);
        continue;
      }
      forgotten += 1;
      await writeRow(current, row.row, { status: 'pending', hospitalId: null, errorMessage: null });
    }
    // A row the directory refused was never stored: a hospital like it belongs to another row.
    const unsure = current.rows.filter((r) => r.directoryBatchId === part.id && !isCreated(r) && !r.rejected);
    for (const [row, match] of matchRows(upstream, unsure, claimed)) {
      adopted += 1;
      await writeRow(current, row.row, { status: 'created', hospitalId: match.id, errorMessage: null }, true);
      deps.metrics?.rowOutcome('adopted');
    }
  }
  const notices = [
    forgotten > 0 &&
      `The directory no longer held ${forgotten} hospital(s) of this batch (it forgets everything when it sleeps); they were created again under the same batch id.`,
    adopted > 0 && `${adopted} row(s) had been created by an earlier attempt whose answer was lost; they were adopted, not created again.`,
  ].filter(Boolean);
  // Added to what the batch already says (how its file was read, an earlier resume), never replacing it.
  if (notices.length > 0) {
    const before = (await deps.store.findBatch(batchId))?.notice;
    await deps.store.updateBatch(held, { notice: [before, ...notices].filter(Boolean).join(' ') });
  }
  deps.logger.info('batch reconciled', { batch_id: batchId, upstream: upstreamCount, forgotten, adopted });
}

/** Fail fast: the directory is down, so the rest of the batch waits for a resume instead of timing out row by row. */
async function stopSending(current: Run, left: RowRecord[], failures: number): Promise<BatchOutcome> {
  const reason = `Not sent: ${failures} rows in a row could not reach the directory, so the batch stopped. Resume it when the directory is back.`;
  // A row whose outcome is unknown keeps saying so: it may exist upstream.
  const notSent = left.filter((row) => row.status !== 'unknown').map((row) => row.row);
  for (const row of current.rows) if (notSent.includes(row.row)) Object.assign(row, { errorMessage: reason });
  if (notSent.length > 0) await current.deps.store.updateRows(current.claim, notSent, { errorMessage: reason });
  return failed(
    current,
    `Stopped after ${failures} consecutive rows failed to reach the directory; ${left.length} row(s) were not attempted. Resume with POST /batches/${current.claim.batchId}/resume.`,
  );
}

/** The service is shutting down: what is in flight is unknown, the rest waits for a resume. */
async function interrupt(current: Run): Promise<BatchOutcome> {
  for (const row of current.rows.filter((r) => r.status === 'creating')) {
    await writeRow(current, row.row, { status: 'unknown', errorMessage: STOPPED_WHILE_SENDING }, true);
  }
  const next = current.deps.config.AUTO_RESUME
    ? 'Another instance, or this service when it starts again, finishes it automatically.'
    : `Resume it with POST /batches/${current.claim.batchId}/resume.`;
  return finish(current, 'interrupted', `The service shut down during this batch. ${next}`);
}

/**
 * A cancel was asked for: the rows in flight have landed, the rest stay pending, nothing is
 * activated. A row whose lost answer was settled as absent, and not sent again, is known
 * not to exist upstream: it goes back to pending with the rows not attempted.
 */
async function cancelled(current: Run): Promise<BatchOutcome> {
  for (const row of current.rows.filter((r) => r.status === 'creating')) {
    await writeRow(current, row.row, { status: 'pending', errorMessage: null }, true);
  }
  const notAttempted = current.rows.filter((row) => row.status === 'pending').length;
  return finish(current, 'cancelled', cancelledMessage(current.claim.batchId, notAttempted));
}

async function failed(current: Run, error: string): Promise<BatchOutcome> {
  const { deps, claim: held } = current;
  if (deps.config.ON_FAILURE !== 'rollback') return finish(current, 'failed', error);
  // Rolled back under this run's own claim: the batch never shows `failed` (a finished
  // state that watchers would stop at) on its way to `rolled_back`.
  const completedAt = Date.now();
  await deps.store.updateBatch(held, { error, completedAt, processingMs: completedAt - current.startedAt });
  try {
    return await rollBackClaimed(deps, held, 'failed', [{ type: 'status', status: 'failed', error }]);
  } catch (rollbackError) {
    deps.logger.error('automatic rollback failed', {
      batch_id: held.batchId,
      error: rollbackError instanceof Error ? rollbackError.message : String(rollbackError),
    });
    return outcome(deps.store, held.batchId);
  }
}

/**
 * Ends the run in `status`. `activated`: the directory activated the whole batch; that, and
 * the record of the last directory batch activated, go in the same transaction.
 */
async function finish(current: Run, status: BatchStatus, error: string | null, { activated }: { activated?: LastActivated } = {}): Promise<BatchOutcome> {
  const { deps, claim: held } = current;
  await current.waits.flush();
  const completedAt = Date.now();
  const events: BatchEvent[] = [...(activated ? [...activated.events, { type: 'activated' as const }] : []), { type: 'status', status, error }];
  const patch = { error, completedAt, processingMs: completedAt - current.startedAt, ...(activated ? { activated: true } : {}) };
  await deps.store.finishBatch(held, status, patch, events, activated?.rows);
  const result = await outcome(deps.store, held.batchId);
  deps.logger.info('batch finished', {
    batch_id: held.batchId,
    status,
    created: result.batch.createdRows,
    failed: result.batch.failedRows,
    activated: result.batch.activated,
    processing_ms: completedAt - current.startedAt,
    ...(error ? { error } : {}),
  });
  return result;
}
