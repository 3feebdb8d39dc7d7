import type { Config } from '../config.js';
import { LeaseLostError, STOPPED_WHILE_SENDING, type AuditEntry, type BatchRecord, type Claim, type RowPatch, type RowRecord, type Store } from '../db/store.js';
import { DirectoryError, matchRows, type CreateOutcome, type DirectoryClient, type LostCreate } from '../directory/client.js';
import { AppError } from '../errors.js';
import type { Lifecycle } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import { rowOutcomeOf, type Metrics } from '../ops/metrics.js';
import { cancelledMessage, watchCancel, type CancelWatch } from './cancel.js';
import { recordWaits, type WaitRecorder } from './directoryWaits.js';
import type { BatchEvent } from './events.js';
import { progressOf } from './progress.js';
import { isCreated, RESUMABLE, ROLLBACKABLE, type BatchStatus } from './status.js';

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

/** A batch and its rows as they stand: what every workflow step answers with. */
export interface BatchOutcome {
  batch: BatchRecord;
  rows: RowRecord[];
}

/** One run of a claimed batch: the claim that fences its writes, and its rows as last written. */
interface Run {
  deps: ProcessDeps;
  claim: Claim;
  startedAt: number;
  rows: RowRecord[];
  /** Records the directory client's waits as `directory_wait` events. */
  waits: WaitRecorder;
  /** A cancel asked for on any instance; read between rows. */
  cancel: CancelWatch;
}

const STOPPED = Symbol('stopped');

/**
 * Takes a freshly recorded (`pending`) batch through the directory: wake it, create each
 * row in file order (committing every outcome as it happens), activate only if every row
 * exists, finish. Throws `directory_unavailable` if the directory never woke.
 */
export async function processBatch(deps: ProcessDeps, batchId: string): Promise<BatchOutcome> {
  return run(deps, await claim(deps, batchId, ['pending'], 'started'));
}

/** Finishes a `failed`, `interrupted` or `cancelled` batch: reconcile, create what is missing, activate. */
export async function resumeBatch(deps: ProcessDeps, batchId: string, by: string | null = null): Promise<BatchOutcome> {
  return run(deps, await claim(deps, batchId, RESUMABLE, 'resumed', deps.config.MAX_ACTIVE_BATCHES, { action: 'resume', by }));
}

/**
 * Finishes a batch that a stop left unfinished (see src/bulk/takeover.ts), already claimed
 * for this instance: like a resume, it settles with the directory first.
 */
export async function takeOverBatch(deps: ProcessDeps, held: Claim): Promise<BatchOutcome> {
  deps.logger.info('batch taken over to finish it', { batch_id: held.batchId, fence: held.fence });
  return run(deps, held);
}

/** Deletes the batch upstream and marks it rolled back; from failed, interrupted, completed or cancelled. */
export async function rollbackBatch(deps: ProcessDeps, batchId: string, by: string | null = null): Promise<BatchOutcome> {
  const { claim: held, previous } = await claimWithPrevious(deps, batchId, ROLLBACKABLE, 'rolled back', undefined, { action: 'rollback', by });
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
  try {
    const deleted = await deps.directory.deleteBatch(batchId, { batchId, onWait: recordWaits(deps, held).onWait(null) });
    deps.logger.info('batch rolled back', { batch_id: batchId, deleted_count: deleted });
  } catch (error) {
    await deps.store.finishBatch(held, restoreTo, {}, onRestore);
    const message = error instanceof Error ? error.message : String(error);
    throw new AppError('directory_unavailable', `${message} The batch was not rolled back; try again later.`, { batch_id: batchId }, { cause: error });
  }
  await deps.store.updateRows(held, 'all', { status: 'deleted' });
  await deps.store.finishBatch(held, 'rolled_back', { activated: false, completedAt: Date.now() }, [
    { type: 'status', status: 'rolled_back', error: null },
  ]);
  return outcome(deps.store, batchId);
}

async function claim(deps: ProcessDeps, batchId: string, from: readonly BatchStatus[], action: string, maxActive?: number, audit?: Audit): Promise<Claim> {
  return (await claimWithPrevious(deps, batchId, from, action, maxActive, audit)).claim;
}

/** Who asked for a resume or rollback, recorded with the claim. */
type Audit = Omit<AuditEntry, 'at'>;

/** Moves the batch to `processing` for this instance; 404, 409 or 503 saying why not. */
async function claimWithPrevious(deps: ProcessDeps, batchId: string, from: readonly BatchStatus[], action: string, maxActive?: number, audit?: Audit) {
  const result = await deps.store.claimBatch(batchId, { from, owner: deps.instanceId, leaseMs: deps.config.BATCH_LEASE_MS, maxActive, audit });
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

/** Runs a claimed batch to its end under its lease; a lost lease stops it without another write. */
async function run(deps: ProcessDeps, held: Claim): Promise<BatchOutcome> {
  try {
    return await withLease(deps, held, () => runClaimed(deps, held));
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

async function runClaimed(deps: ProcessDeps, held: Claim): Promise<BatchOutcome> {
  const { store, directory } = deps;
  const batchId = held.batchId;
  const startedAt = Date.now();
  await store.updateBatch(held, { startedAt, error: null, completedAt: null }, [{ type: 'status', status: 'processing', error: null }]);
  deps.logger.info('batch started', { batch_id: batchId });
  const current: Run = { deps, claim: held, startedAt, rows: await store.findRows(batchId), waits: recordWaits(deps, held), cancel: watchCancel(store, batchId) };

  const woke = await unlessStopped(deps, directory.wake({ batchId, onWait: current.waits.onWait(null) }).then(() => null, (error: unknown) => error));
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
  // Checked once more before activation: a cancel asked for while the last rows were sent stops it here.
  if (stop.kind === 'cancelled' || (await current.cancel.refresh())) return cancelled(current);
  if (stop.kind === 'circuit_open') return stopSending(current, stop.notAttempted, stop.failures);

  const missing = current.rows.filter((row) => !isCreated(row)).length;
  if (missing > 0) return failed(current, `${missing} of ${current.rows.length} rows were not created; the batch was not activated.`);
  const activated = await unlessStopped(
    deps,
    directory.activateBatch(batchId, current.rows.map((row) => row.hospitalId!), { batchId, onWait: current.waits.onWait(null) }, { confirmed: stop.allAnswered }).catch((error: unknown) => {
      if (error instanceof DirectoryError) return error;
      throw error;
    }),
  );
  if (activated === STOPPED) return interrupt(current);
  if (activated instanceof DirectoryError) return failed(current, activated.message);
  await store.updateRows(held, 'all', { status: 'created_and_activated' });
  await store.updateBatch(held, { activated: true }, [{ type: 'activated' }]);
  deps.logger.info('batch activated', { batch_id: batchId, activated_count: activated.activatedCount });
  return finish(current, 'completed', null);
}

type LoopEnd = { kind: 'done'; allAnswered: boolean } | { kind: 'interrupted' } | { kind: 'cancelled' } | { kind: 'circuit_open'; failures: number; notAttempted: RowRecord[] };

/** A row whose last create's answer was lost: unsettled, still `creating` in the store, until settleLost. */
interface LostRow extends LostCreate {
  record: RowRecord;
  message: string;
}

/**
 * Creates every row not yet created, in file order, up to UPSTREAM_CONCURRENCY at once,
 * committing each outcome as it lands. A create whose answer is lost does not hold up the
 * rows after it: it stays `creating` (a crash or take-over reconciles it) and the lost
 * rows are settled together once the rows in hand are sent (settleLost), then those the
 * directory shows absent are sent again. Identical rows never overlap, in flight or
 * unsettled, so a lost answer can always be settled by adopting "a hospital with these
 * values that no other row owns". New rows stop starting when a shutdown begins, a cancel
 * is asked for (read after each row lands) or the directory looks down; rows already
 * started keep their attempts, and lost answers are still settled (a read, never a create).
 */
async function createMissingRows(current: Run): Promise<LoopEnd> {
  const { deps } = current;
  const { directory, lifecycle, config } = deps;
  const claimed = new Set(current.rows.filter(isCreated).map((row) => row.hospitalId!));
  // A row the directory refused as it stands would only be refused again: it waits for an edit.
  let queue = current.rows.filter((row) => !isCreated(row) && !row.rejected);
  let resend: RowRecord[] = [];
  // Only when every row's id came from a create answer of this run can activation skip its read.
  let allAnswered = queue.length === current.rows.length;
  const sentThisRun = new Map<number, number>();
  const lost = new Map<string, LostRow>();
  const sameRowInFlight = new Map<string, Promise<unknown>>();
  const failures = { inARow: 0, counted: new Set<number>() };
  let interrupted = false;
  const markCreating = coalescedCreating(current);

  const keyOf = (row: RowRecord) => JSON.stringify([row.name, row.address, row.phone]);
  const countFailure = (row: RowRecord) => {
    if (!failures.counted.has(row.row)) failures.inARow += 1;
    failures.counted.add(row.row);
  };
  const stopping = () => {
    if (lifecycle.stopping) interrupted = true;
    return interrupted;
  };
  const circuitOpen = () => failures.inARow >= config.CIRCUIT_FAILURE_THRESHOLD;
  /** No more creates, new or re-sent: the batch is stopping or was cancelled. */
  const mustStop = () => stopping() || current.cancel.requested;

  const runRow = async (row: RowRecord): Promise<void> => {
    await markCreating(row.row);
    const sent = sentThisRun.get(row.row) ?? 0;
    const result = await unlessStopped(
      deps,
      directory.createHospital(
        { name: row.name, address: row.address, phone: row.phone },
        { batchId: row.batchId, row: row.row, claimed, onWait: current.waits.onWait(row.row), maxAttempts: config.UPSTREAM_MAX_ATTEMPTS - sent },
      ),
    );
    if (result === STOPPED) {
      interrupted = true;
      return;
    }
    sentThisRun.set(row.row, sent + result.attempts);
    if (result.kind === 'lost') {
      lost.set(keyOf(row), { name: row.name, address: row.address, phone: row.phone, row: row.row, lostAt: result.lostAt, record: row, message: result.message });
      countFailure(row);
      deps.logger.warn('row create answer lost; settled before activation', { batch_id: row.batchId, row: row.row, attempts: sent + result.attempts, error: result.message });
      // The row waits out the settle time before it is checked (and sent again if absent):
      // a retry, as far as the person watching is concerned.
      current.waits.onWait(row.row)({
        op: 'create',
        reason: 'retry',
        attempt: sent + result.attempts,
        status: result.status,
        message: result.message,
        delayMs: config.UPSTREAM_SETTLE_MS,
      });
    } else {
      await commitRow(current, row, { ...result, attempts: sent + result.attempts });
      if (result.kind === 'failed') countFailure(row);
      else failures.inARow = 0;
    }
    await current.cancel.refresh();
  };

  /** Sends the rows in hand: re-sends first (rows already started keep their attempts), new rows while the circuit is closed. */
  const sendRound = async (): Promise<void> => {
    const deferred: RowRecord[] = [];
    const next = () => (mustStop() ? undefined : (resend.shift() ?? (circuitOpen() ? undefined : queue.shift())));
    const worker = async (): Promise<void> => {
      // Checked before taking a row, so a stop leaves every untouched row in the queue.
      for (let row = next(); row; row = next()) {
        const key = keyOf(row);
        const taken = row;
        const turn = (sameRowInFlight.get(key) ?? Promise.resolve()).then(() => {
          // It may have waited behind its twin while the batch was told to stop, or while that twin's answer was lost.
          if (mustStop()) queue.push(taken);
          else if (lost.has(key)) deferred.push(taken);
          else return runRow(taken);
        });
        sameRowInFlight.set(key, turn);
        await turn;
      }
    };
    const width = Math.min(config.UPSTREAM_CONCURRENCY, Math.max(resend.length + queue.length, 1));
    await Promise.all(Array.from({ length: width }, worker));
    // A deferred row was never sent: it goes back among the new rows, in file order.
    queue = [...resend, ...deferred, ...queue].sort((a, b) => a.row - b.row);
    resend = [];
  };

  await current.cancel.refresh();
  for (;;) {
    await sendRound();
    if (interrupted) return { kind: 'interrupted' };
    if (lost.size === 0) break;
    const settled = await settleLost(current, [...lost.values()], claimed, sentThisRun);
    if (settled === STOPPED) return { kind: 'interrupted' };
    lost.clear();
    if (settled.adopted > 0) {
      allAnswered = false;
      // The directory stores what it is sent: it is slow, not down.
      failures.inARow = 0;
    }
    resend = settled.resend;
  }
  if (current.cancel.requested) return { kind: 'cancelled' };
  if (queue.length > 0) return { kind: 'circuit_open', failures: failures.inARow, notAttempted: queue };
  return { kind: 'done', allAnswered };
}

/**
 * Settles the run's lost creates with shared batch reads (src/directory/settle.ts): a row
 * whose hospital turned up is created (adopted); one the directory shows absent after the
 * settle time is sent again while it has attempts left (returned in `resend`), else it
 * failed; if the batch cannot be read they stay unknown, as a stop would leave them.
 */
async function settleLost(current: Run, lost: LostRow[], claimed: Set<number>, sentThisRun: Map<number, number>) {
  const { deps } = current;
  const batchId = current.claim.batchId;
  const attemptsOf = (row: LostRow) => sentThisRun.get(row.row) ?? 0;
  const settlement = await unlessStopped(
    deps,
    deps.directory.settleCreates(batchId, lost, claimed, { batchId, onWait: current.waits.onWait(null) }).catch((error: unknown) => {
      if (error instanceof DirectoryError) return error;
      throw error;
    }),
  );
  if (settlement === STOPPED) return STOPPED;
  if (settlement instanceof DirectoryError) {
    for (const row of lost) {
      await commitRow(current, row.record, { kind: 'failed', outcome: 'unknown', message: `${row.message}; then ${settlement.message}`, attempts: attemptsOf(row) });
    }
    return { adopted: 0, resend: [] };
  }
  const resend: RowRecord[] = [];
  for (const row of lost) {
    const hospital = settlement.adopted.get(row);
    if (hospital) {
      await commitRow(current, row.record, { kind: 'created', hospital, adopted: true, attempts: attemptsOf(row) });
    } else if (attemptsOf(row) < deps.config.UPSTREAM_MAX_ATTEMPTS) {
      resend.push(row.record);
    } else {
      await commitRow(current, row.record, { kind: 'failed', outcome: 'not_created', message: row.message, attempts: attemptsOf(row) });
    }
  }
  deps.logger.info('lost creates settled', { batch_id: batchId, lost: lost.length, adopted: settlement.adopted.size, resend: resend.length, reads: settlement.reads });
  return { adopted: settlement.adopted.size, resend };
}

/**
 * `creating` must be stored before a create is sent (a crash then leaves the row `unknown`,
 * not `pending`). Rows that start in the same tick (all of them at full concurrency) share
 * one write.
 */
function coalescedCreating(current: Run): (rowNumber: number) => Promise<void> {
  let next: { rows: number[]; written: Promise<void> } | null = null;
  return (rowNumber) => {
    if (!next) {
      const batch = { rows: [] as number[], written: Promise.resolve() };
      batch.written = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        next = null;
        const now = Date.now();
        for (const [index, row] of current.rows.entries()) {
          if (batch.rows.includes(row.row)) current.rows[index] = { ...row, status: 'creating', updatedAt: now };
        }
        return current.deps.store.updateRows(current.claim, batch.rows, { status: 'creating' }, [], now);
      });
      next = batch;
    }
    next.rows.push(rowNumber);
    return next.written;
  };
}

/** Writes one row's change to the store and to the run's copy; a `row` event when it is an outcome. */
async function writeRow(current: Run, rowNumber: number, patch: RowPatch, announce = false): Promise<RowRecord> {
  const index = current.rows.findIndex((row) => row.row === rowNumber);
  const updated: RowRecord = { ...current.rows[index]!, ...patch, updatedAt: Date.now() };
  current.rows[index] = updated;
  const events: BatchEvent[] = announce ? [rowEvent(current, updated)] : [];
  // A wait this row reported is stored before its outcome.
  await current.waits.flush();
  await current.deps.store.updateRows(current.claim, [rowNumber], patch, events);
  return updated;
}

function rowEvent(current: Run, row: RowRecord, withProgress = true): BatchEvent {
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
  const upstream = await deps.directory.getBatch(batchId, { batchId, onWait: current.waits.onWait(null) });
  const present = new Set(upstream.map((h) => h.id));
  const claimed = new Set<number>();
  let forgotten = 0;
  let adopted = 0;
  for (const row of current.rows.filter(isCreated)) {
    if (present.has(row.hospitalId!)) {
      claimed.add(row.hospitalId!);
      continue;
    }
    forgotten += 1;
    await writeRow(current, row.row, { status: 'pending', hospitalId: null, errorMessage: null });
  }
  // A row the directory refused was never stored: a hospital like it belongs to another row.
  for (const [row, match] of matchRows(upstream, current.rows.filter((r) => !isCreated(r) && !r.rejected), claimed)) {
    adopted += 1;
    await writeRow(current, row.row, { status: 'created', hospitalId: match.id, errorMessage: null }, true);
    deps.metrics?.rowOutcome('adopted');
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
  deps.logger.info('batch reconciled', { batch_id: batchId, upstream: upstream.length, forgotten, adopted });
}

async function commitRow(current: Run, row: RowRecord, result: SettledOutcome): Promise<void> {
  const attempts = row.attempts + result.attempts;
  await writeRow(current, row.row, rowPatch(result, attempts), true);
  current.deps.metrics?.rowOutcome(rowOutcomeOf(result));
  current.deps.logger.log(result.kind === 'created' ? 'info' : 'warn', `row ${result.kind}`, {
    batch_id: row.batchId,
    row: row.row,
    attempts,
    ...(result.kind === 'created' ? { hospital_id: result.hospital.id, adopted: result.adopted } : { error: result.message }),
  });
}

/** What a row's create came to once settled: a lost answer is never committed as such. */
type SettledOutcome = Exclude<CreateOutcome, { kind: 'lost' }>;

function rowPatch(result: SettledOutcome, attempts: number): RowPatch {
  switch (result.kind) {
    case 'created':
      return { status: 'created', hospitalId: result.hospital.id, errorMessage: null, attempts, rejected: false };
    case 'rejected':
      return { status: 'failed', errorMessage: `Rejected by the directory (HTTP ${result.status}): ${result.message}`, attempts, rejected: true };
    case 'failed':
      return result.outcome === 'unknown'
        ? {
            status: 'unknown',
            errorMessage: `No answer from the directory after ${attempts} attempt(s) (${result.message}); it may have been created: resume the batch to check.`,
            attempts,
          }
        : { status: 'failed', errorMessage: `Not created after ${attempts} attempt(s): ${result.message}`, attempts };
  }
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

async function finish(current: Run, status: BatchStatus, error: string | null, { announce = true } = {}): Promise<BatchOutcome> {
  const { deps, claim: held } = current;
  await current.waits.flush();
  const completedAt = Date.now();
  const events: BatchEvent[] = announce ? [{ type: 'status', status, error }] : [];
  await deps.store.finishBatch(held, status, { error, completedAt, processingMs: completedAt - current.startedAt }, events);
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

async function outcome(store: Store, batchId: string): Promise<BatchOutcome> {
  const [batch, rows] = await Promise.all([store.findBatch(batchId), store.findRows(batchId)]);
  return { batch: batch!, rows };
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
