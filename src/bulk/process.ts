import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import { claimBatch, findBatch, findRows, updateBatch, updateRows } from '../db/queries.js';
import type { BatchRecord, BatchStatus, RowRecord } from '../db/schema.js';
import { DirectoryError, findUnclaimed, type CreateOutcome, type DirectoryClient } from '../directory/client.js';
import { AppError } from '../errors.js';
import type { Lifecycle } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import type { EventBus } from './events.js';
import { toProgress, toReport, type BatchReport } from './report.js';

export interface ProcessDeps {
  db: Db;
  directory: DirectoryClient;
  logger: Logger;
  lifecycle: Lifecycle;
  events: EventBus;
  config: Pick<Config, 'CIRCUIT_FAILURE_THRESHOLD' | 'ON_FAILURE' | 'SHUTDOWN_GRACE_MS' | 'UPSTREAM_CONCURRENCY'>;
}

const STOPPED = Symbol('stopped');
const isCreated = (row: RowRecord) => row.status === 'created' || row.status === 'created_and_activated';

/**
 * Takes a recorded batch through the directory: wake it, settle what an earlier run left
 * open, create each missing row in file order (committing every outcome as it happens),
 * activate only if every row exists, finish. Resolves with the final report; throws
 * `directory_unavailable` if the directory never woke.
 */
export async function processBatch(deps: ProcessDeps, batchId: string): Promise<BatchReport> {
  const { db, directory, lifecycle, config } = deps;
  const startedAt = Date.now();
  updateBatch(db, batchId, { status: 'processing', startedAt, error: null, completedAt: null });
  deps.events.record(batchId, 'batch', { status: 'processing' });
  deps.logger.info('batch started', { batch_id: batchId });

  const woke = await unlessStopped(deps, directory.wake({ batchId }).then(
    () => null,
    (error: unknown) => error,
  ));
  if (woke === STOPPED) return interrupt(deps, batchId, startedAt);
  if (woke !== null) {
    const message = woke instanceof Error ? woke.message : String(woke);
    finish(deps, batchId, startedAt, 'failed', message);
    throw new AppError(
      'directory_unavailable',
      `${message} Nothing more was created; the batch is kept and can be resumed with POST /batches/${batchId}/resume.`,
      { batch_id: batchId },
      { cause: woke },
    );
  }

  try {
    // A fresh upload has touched nothing upstream; anything else must be settled first.
    const before = findRows(db, batchId);
    if (before.some((row) => row.status !== 'pending' || row.attempts > 0)) await reconcile(deps, batchId, before);
  } catch (error) {
    if (!(error instanceof DirectoryError)) throw error;
    return finish(deps, batchId, startedAt, 'failed', `Could not check the batch in the directory before resuming: ${error.message}`);
  }

  const rows = findRows(db, batchId);
  const stop = await createMissingRows(deps, rows);
  if (stop.kind === 'interrupted') return interrupt(deps, batchId, startedAt);
  if (stop.kind === 'circuit_open') return stopSending(deps, batchId, startedAt, stop.notAttempted, stop.failures);

  const done = findRows(db, batchId);
  const missing = done.filter((row) => !isCreated(row)).length;
  if (missing > 0) {
    return failed(deps, batchId, startedAt, `${missing} of ${done.length} rows were not created; the batch was not activated.`);
  }
  const activated = await unlessStopped(
    deps,
    directory.activateBatch(batchId, done.map((row) => row.hospitalId!), { batchId }).catch((error: unknown) => {
      if (error instanceof DirectoryError) return error;
      throw error;
    }),
  );
  if (activated === STOPPED) return interrupt(deps, batchId, startedAt);
  if (activated instanceof DirectoryError) return failed(deps, batchId, startedAt, activated.message);
  updateRows(db, batchId, 'all', { status: 'created_and_activated' });
  updateBatch(db, batchId, { activated: true });
  deps.events.record(batchId, 'batch', { status: 'processing', batch_activated: true });
  deps.logger.info('batch activated', { batch_id: batchId, activated_count: activated.activatedCount });
  return finish(deps, batchId, startedAt, 'completed', null);
}

type LoopEnd = { kind: 'done' } | { kind: 'interrupted' } | { kind: 'circuit_open'; failures: number; notAttempted: RowRecord[] };

/**
 * Creates every row not yet created, in file order, up to UPSTREAM_CONCURRENCY at once,
 * committing each outcome as it lands. Identical rows never overlap, so a lost answer can
 * always be settled by adopting "a hospital with these values that no other row owns".
 * New rows stop starting when a shutdown begins or the directory looks down.
 */
async function createMissingRows(deps: ProcessDeps, rows: RowRecord[]): Promise<LoopEnd> {
  const { directory, lifecycle, config } = deps;
  const claimed = new Set(rows.filter(isCreated).map((row) => row.hospitalId!));
  const queue = rows.filter((row) => !isCreated(row));
  const sameRowInFlight = new Map<string, Promise<unknown>>();
  let failuresInARow = 0;
  let interrupted = false;

  const runRow = async (row: RowRecord): Promise<void> => {
    updateRows(deps.db, row.batchId, [row.row], { status: 'creating' });
    const outcome = await unlessStopped(
      deps,
      directory.createHospital({ name: row.name, address: row.address, phone: row.phone }, { batchId: row.batchId, row: row.row, claimed }),
    );
    if (outcome === STOPPED) {
      interrupted = true;
      return;
    }
    commitRow(deps, row, outcome);
    failuresInARow = outcome.kind === 'failed' ? failuresInARow + 1 : 0;
  };
  const mustStop = () => {
    if (lifecycle.stopping) interrupted = true;
    return interrupted || failuresInARow >= config.CIRCUIT_FAILURE_THRESHOLD;
  };
  const worker = async (): Promise<void> => {
    // Checked before taking a row, so a stop leaves every untouched row in the queue.
    while (!mustStop()) {
      const row = queue.shift();
      if (!row) return;
      const key = JSON.stringify([row.name, row.address, row.phone]);
      const turn = (sameRowInFlight.get(key) ?? Promise.resolve()).then(() => {
        // It may have waited behind its twin while the batch was told to stop.
        if (mustStop()) queue.push(row);
        else return runRow(row);
      });
      sameRowInFlight.set(key, turn);
      await turn;
    }
  };
  await Promise.all(Array.from({ length: Math.min(config.UPSTREAM_CONCURRENCY, Math.max(queue.length, 1)) }, worker));
  if (interrupted) return { kind: 'interrupted' };
  if (queue.length > 0) return { kind: 'circuit_open', failures: failuresInARow, notAttempted: queue };
  return { kind: 'done' };
}

/** Finishes a `failed` or `interrupted` batch: reconcile, create what is missing, activate. */
export async function resumeBatch(deps: ProcessDeps, batchId: string): Promise<BatchReport> {
  claim(deps, batchId, ['failed', 'interrupted'], 'resumed');
  return processBatch(deps, batchId);
}

/**
 * Deletes the batch upstream and marks it rolled back. Allowed from `failed`,
 * `interrupted` and `completed`; throws `conflict` otherwise.
 */
export async function rollbackBatch(deps: ProcessDeps, batchId: string): Promise<BatchReport> {
  const batch = claim(deps, batchId, ['failed', 'interrupted', 'completed'], 'rolled back');
  try {
    const deleted = await deps.directory.deleteBatch(batchId, { batchId });
    deps.logger.info('batch rolled back', { batch_id: batchId, deleted_count: deleted });
  } catch (error) {
    updateBatch(deps.db, batchId, { status: batch.status });
    const message = error instanceof Error ? error.message : String(error);
    throw new AppError('directory_unavailable', `${message} The batch was not rolled back; try again later.`, { batch_id: batchId }, { cause: error });
  }
  updateRows(deps.db, batchId, 'all', { status: 'deleted' });
  const completedAt = Date.now();
  updateBatch(deps.db, batchId, { status: 'rolled_back', activated: false, completedAt });
  deps.events.record(batchId, 'batch', { status: 'rolled_back', error: null });
  return toReport(findBatch(deps.db, batchId)!, findRows(deps.db, batchId));
}

/** Moves the batch to `processing` if it is in one of `from`; else 404 or 409 saying why not. */
function claim(deps: ProcessDeps, batchId: string, from: BatchStatus[], action: string): BatchRecord {
  const batch = findBatch(deps.db, batchId);
  if (!batch) throw new AppError('not_found', `No batch with id ${batchId}.`);
  if (!claimBatch(deps.db, batchId, from, 'processing')) {
    const allowed = `${from.slice(0, -1).join(', ')} or ${from.at(-1)}`;
    throw new AppError('conflict', `The batch is ${batch.status}; only a ${allowed} batch can be ${action}.`, {
      batch_id: batchId,
      batch_status: batch.status,
    });
  }
  return batch;
}

/**
 * Makes the history agree with the directory before a resume: created rows whose hospital
 * is gone (the directory forgets everything when it sleeps) go back to pending; rows not
 * known to be created adopt a matching hospital no other row owns (a create whose answer
 * was lost), as a multiset, so two identical rows never share one hospital.
 */
async function reconcile(deps: ProcessDeps, batchId: string, rows: RowRecord[]): Promise<void> {
  const upstream = await deps.directory.getBatch(batchId, { batchId });
  const present = new Set(upstream.map((h) => h.id));
  const claimed = new Set<number>();
  let forgotten = 0;
  let adopted = 0;
  for (const row of rows.filter(isCreated)) {
    if (present.has(row.hospitalId!)) {
      claimed.add(row.hospitalId!);
      continue;
    }
    forgotten += 1;
    updateRows(deps.db, batchId, [row.row], { status: 'pending', hospitalId: null, errorMessage: null });
  }
  for (const row of rows.filter((r) => !isCreated(r))) {
    const match = findUnclaimed(upstream, row, claimed);
    if (!match) continue;
    claimed.add(match.id);
    adopted += 1;
    updateRows(deps.db, batchId, [row.row], { status: 'created', hospitalId: match.id, errorMessage: null });
    deps.events.record(batchId, 'row', { row: row.row, status: 'created', hospital_id: match.id, error_message: null, attempts: row.attempts });
  }
  const notices = [
    forgotten > 0 &&
      `The directory no longer held ${forgotten} hospital(s) of this batch (it forgets everything when it sleeps); they were created again under the same batch id.`,
    adopted > 0 && `${adopted} row(s) had been created by an earlier attempt whose answer was lost; they were adopted, not created again.`,
  ].filter(Boolean);
  updateBatch(deps.db, batchId, { notice: notices.length > 0 ? notices.join(' ') : null });
  deps.logger.info('batch reconciled', { batch_id: batchId, upstream: upstream.length, forgotten, adopted });
}

function commitRow({ db, logger, events, directory }: ProcessDeps, row: RowRecord, outcome: CreateOutcome): void {
  const attempts = row.attempts + outcome.attempts;
  const patch = rowPatch(outcome, attempts);
  updateRows(db, row.batchId, [row.row], patch);
  events.record(row.batchId, 'row', {
    row: row.row,
    status: patch.status,
    hospital_id: 'hospitalId' in patch ? patch.hospitalId : null,
    error_message: patch.errorMessage,
    attempts,
    progress: toProgress(findBatch(db, row.batchId)!, findRows(db, row.batchId), directory.estimatedCreateWaitMs),
  });
  logger.log(outcome.kind === 'created' ? 'info' : 'warn', `row ${outcome.kind}`, {
    batch_id: row.batchId,
    row: row.row,
    attempts,
    ...(outcome.kind === 'created' ? { hospital_id: outcome.hospital.id, adopted: outcome.adopted } : { error: outcome.message }),
  });
}

function rowPatch(outcome: CreateOutcome, attempts: number) {
  switch (outcome.kind) {
    case 'created':
      return { status: 'created' as const, hospitalId: outcome.hospital.id, errorMessage: null, attempts };
    case 'rejected':
      return { status: 'failed' as const, errorMessage: `Rejected by the directory (HTTP ${outcome.status}): ${outcome.message}`, attempts };
    case 'failed':
      return outcome.outcome === 'unknown'
        ? {
            status: 'unknown' as const,
            errorMessage: `No answer from the directory after ${attempts} attempt(s) (${outcome.message}); it may have been created: resume the batch to check.`,
            attempts,
          }
        : { status: 'failed' as const, errorMessage: `Not created after ${attempts} attempt(s): ${outcome.message}`, attempts };
  }
}

/** Fail fast: the directory is down, so the rest of the batch waits for a resume instead of timing out row by row. */
function stopSending(deps: ProcessDeps, batchId: string, startedAt: number, left: RowRecord[], failures: number): Promise<BatchReport> {
  const reason = `Not sent: ${failures} rows in a row could not reach the directory, so the batch stopped. Resume it when the directory is back.`;
  // A row whose outcome is unknown keeps saying so: it may exist upstream.
  updateRows(deps.db, batchId, left.filter((row) => row.status !== 'unknown').map((row) => row.row), { errorMessage: reason });
  return failed(
    deps,
    batchId,
    startedAt,
    `Stopped after ${failures} consecutive rows failed to reach the directory; ${left.length} row(s) were not attempted. Resume with POST /batches/${batchId}/resume.`,
  );
}

/** The service is shutting down: what is in flight is unknown, the rest waits for a resume. */
function interrupt(deps: ProcessDeps, batchId: string, startedAt: number): BatchReport {
  const inFlight = findRows(deps.db, batchId).filter((row) => row.status === 'creating');
  const errorMessage = 'The service stopped while this row was being sent; resume the batch to check whether it was created.';
  if (inFlight.length > 0) updateRows(deps.db, batchId, inFlight.map((row) => row.row), { status: 'unknown', errorMessage });
  for (const row of inFlight) {
    deps.events.record(batchId, 'row', { row: row.row, status: 'unknown', hospital_id: null, error_message: errorMessage, attempts: row.attempts });
  }
  return finish(deps, batchId, startedAt, 'interrupted', `The service shut down during this batch. Resume it with POST /batches/${batchId}/resume.`);
}

async function failed(deps: ProcessDeps, batchId: string, startedAt: number, error: string): Promise<BatchReport> {
  const rollingBack = deps.config.ON_FAILURE === 'rollback';
  // When a rollback follows, "failed" is not the end: watchers hear the rollback's outcome instead.
  const report = finish(deps, batchId, startedAt, 'failed', error, { announce: !rollingBack });
  if (!rollingBack) return report;
  try {
    return await rollbackBatch(deps, batchId);
  } catch (rollbackError) {
    deps.logger.error('automatic rollback failed', { batch_id: batchId, error: rollbackError instanceof Error ? rollbackError.message : String(rollbackError) });
    deps.events.record(batchId, 'batch', { status: 'failed', error });
    return report;
  }
}

function finish(
  deps: ProcessDeps,
  batchId: string,
  startedAt: number,
  status: BatchStatus,
  error: string | null,
  { announce = true } = {},
): BatchReport {
  const completedAt = Date.now();
  updateBatch(deps.db, batchId, { status, error, completedAt, processingMs: completedAt - startedAt });
  if (announce) deps.events.record(batchId, 'batch', { status, error });
  const report = toReport(findBatch(deps.db, batchId)!, findRows(deps.db, batchId));
  deps.logger.info('batch finished', {
    batch_id: batchId,
    status,
    created: report.processed_hospitals,
    failed: report.failed_hospitals,
    activated: report.batch_activated,
    processing_ms: completedAt - startedAt,
    ...(error ? { error } : {}),
  });
  return report;
}

/** Waits for `work`, unless a shutdown begins and the grace period runs out first. */
async function unlessStopped<T>({ lifecycle, config }: ProcessDeps, work: Promise<T>): Promise<T | typeof STOPPED> {
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
