import type { RowPatch, RowRecord } from '../db/store.js';
import { DirectoryError, type CreateOutcome, type LostCreate } from '../directory/client.js';
import { rowOutcomeOf } from '../ops/metrics.js';
import { directoryBatchesOf } from './directoryBatches.js';
import { isCreated } from './status.js';
import { STOPPED, unlessStopped, writeRow, type Run } from './run.js';

/**
 * Creating the rows of a claimed batch: rounds of creates in file order, up to
 * UPSTREAM_CONCURRENCY at once, identical rows never overlapping; lost answers settled with
 * shared batch reads before activation; each outcome committed as it lands.
 */
export type LoopEnd = { kind: 'done'; allAnswered: boolean } | { kind: 'interrupted' } | { kind: 'cancelled' } | { kind: 'circuit_open'; failures: number; notAttempted: RowRecord[] };

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
export async function createMissingRows(current: Run): Promise<LoopEnd> {
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

  // Twins only matter within one directory batch: a lost answer is settled by reading that batch.
  const keyOf = (row: RowRecord) => JSON.stringify([row.directoryBatchId, row.name, row.address, row.phone]);
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

  /** This round's outcomes on their way to the store: the next row's `creating` joins their commit and waits for it. */
  const storing: Promise<void>[] = [];

  const runRow = async (row: RowRecord): Promise<void> => {
    const before = current.rows.find((r) => r.row === row.row)!.status;
    // Stored before the create is sent (a crash then leaves the row `unknown`, not
    // `pending`), in one commit with the outcomes of the rows before it, which reads the
    // cancel flag. The create takes its pacing slot meanwhile, and goes out once it is stored.
    const marked = writeRow(current, row.row, { status: 'creating' });
    const sent = sentThisRun.get(row.row) ?? 0;
    const result = await unlessStopped(
      deps,
      directory.createHospital(
        { name: row.name, address: row.address, phone: row.phone },
        {
          batchId: row.batchId,
          directoryBatchId: row.directoryBatchId,
          row: row.row,
          claimed,
          onWait: current.waits.onWait(row.row),
          maxAttempts: config.UPSTREAM_MAX_ATTEMPTS - sent,
          ready: marked.then(
            () => !mustStop(),
            () => false,
          ),
        },
      ),
    );
    if (result === STOPPED) {
      interrupted = true;
      return;
    }
    if (result.kind === 'withheld') {
      // Not stored (a lost lease: thrown here), or a stop or a cancel that commit saw: not
      // sent, so the row goes back as it was.
      await marked;
      await writeRow(current, row.row, { status: before });
      queue.push(row);
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
      // Nothing is committed for it, so nothing read the cancel flag.
      await current.cancel.refresh();
      return;
    }
    if (result.kind === 'failed') countFailure(row);
    else failures.inARow = 0;
    const stored = commitRow(current, row, { ...result, attempts: sent + result.attempts });
    // Its failure (a lost lease) fails the next row's `creating` too, and the round's end.
    stored.catch(() => undefined);
    storing.push(stored);
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
    await Promise.all(storing.splice(0));
    // A deferred row was never sent: it goes back among the new rows, in file order.
    queue = [...resend, ...deferred, ...queue].sort((a, b) => a.row - b.row);
    resend = [];
  };

  // No read of the cancel flag first: the commit that marks a row `creating` reads it, before any create is sent.
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
  // One read per directory batch with lost rows, all at once: each is its own batch upstream.
  const parts = directoryBatchesOf(lost.map((row) => ({ ...row, directoryBatchId: row.record.directoryBatchId })));
  const settlements = await unlessStopped(
    deps,
    Promise.all(
      parts.map((part) =>
        deps.directory.settleCreates(part.id, part.rows, claimed, { batchId, onWait: current.waits.onWait(null) }).catch((error: unknown) => {
          if (error instanceof DirectoryError) return error;
          throw error;
        }),
      ),
    ),
  );
  if (settlements === STOPPED) return STOPPED;
  const resend: RowRecord[] = [];
  let adopted = 0;
  let reads = 0;
  for (const [index, part] of parts.entries()) {
    const settlement = settlements[index]!;
    if (settlement instanceof DirectoryError) {
      for (const row of part.rows) {
        await commitRow(current, row.record, { kind: 'failed', outcome: 'unknown', message: `${row.message}; then ${settlement.message}`, attempts: attemptsOf(row) });
      }
      continue;
    }
    adopted += settlement.adopted.size;
    reads += settlement.reads;
    for (const row of part.rows) {
      const hospital = settlement.adopted.get(row);
      if (hospital) {
        await commitRow(current, row.record, { kind: 'created', hospital, adopted: true, attempts: attemptsOf(row) });
      } else if (attemptsOf(row) < deps.config.UPSTREAM_MAX_ATTEMPTS) {
        resend.push(row.record);
      } else {
        await commitRow(current, row.record, { kind: 'failed', outcome: 'not_created', message: row.message, attempts: attemptsOf(row) });
      }
    }
  }
  deps.logger.info('lost creates settled', { batch_id: batchId, lost: lost.length, adopted, resend: resend.length, reads });
  return { adopted, resend };
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
type SettledOutcome = Exclude<CreateOutcome, { kind: 'lost' } | { kind: 'withheld' }>;

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
