import { AppError } from '../errors.js';
import type { Db } from '../db/database.js';
import { findBatch, findRows, updateBatch, updateRows } from '../db/queries.js';
import type { BatchStatus, RowRecord } from '../db/schema.js';
import { DirectoryError, type CreateOutcome, type DirectoryClient } from '../directory/client.js';
import type { Logger } from '../logger.js';
import { toReport, type BatchReport } from './report.js';

export interface ProcessDeps {
  db: Db;
  directory: DirectoryClient;
  logger: Logger;
}

/**
 * Takes a recorded batch through the directory: wake it, create each row in file order
 * (committing every outcome as it happens), activate only if every row exists, finish.
 * Resolves with the final report; throws `directory_unavailable` if the directory never woke.
 */
export async function processBatch(deps: ProcessDeps, batchId: string): Promise<BatchReport> {
  const { db, directory } = deps;
  const logger = deps.logger.child({ batch_id: batchId });
  const startedAt = Date.now();
  updateBatch(db, batchId, { status: 'processing', startedAt, error: null });
  logger.info('batch started');

  try {
    await directory.wake({ batchId });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    finish(deps, batchId, startedAt, 'failed', message);
    throw new AppError(
      'directory_unavailable',
      `${message} Nothing was created; the batch is kept with its rows pending.`,
      { batch_id: batchId },
      { cause: error },
    );
  }

  const rows = findRows(db, batchId);
  const claimed = new Set(rows.flatMap((row) => (row.hospitalId === null ? [] : [row.hospitalId])));
  for (const row of rows) {
    if (row.status === 'created' || row.status === 'created_and_activated') continue;
    await createRow(deps, row, claimed);
  }

  const after = findRows(db, batchId);
  if (!after.every((row) => row.status === 'created')) {
    const failed = after.filter((row) => row.status !== 'created').length;
    return finish(deps, batchId, startedAt, 'failed', `${failed} of ${after.length} rows were not created; the batch was not activated.`);
  }
  try {
    const hospitalIds = after.map((row) => row.hospitalId!);
    const { activatedCount } = await directory.activateBatch(batchId, hospitalIds, { batchId });
    updateRows(db, batchId, 'all', { status: 'created_and_activated' });
    updateBatch(db, batchId, { activated: true });
    logger.info('batch activated', { activated_count: activatedCount });
    return finish(deps, batchId, startedAt, 'completed', null);
  } catch (error) {
    if (!(error instanceof DirectoryError)) throw error;
    return finish(deps, batchId, startedAt, 'failed', error.message);
  }
}

async function createRow({ db, directory, logger }: ProcessDeps, row: RowRecord, claimed: Set<number>): Promise<void> {
  const { batchId } = row;
  // `creating` is on disk before the request leaves: a crash now must not look like "never sent".
  updateRows(db, batchId, [row.row], { status: 'creating' });
  const outcome = await directory.createHospital(
    { name: row.name, address: row.address, phone: row.phone },
    { batchId, row: row.row, claimed },
  );
  const attempts = row.attempts + outcome.attempts;
  if (outcome.kind === 'created') claimed.add(outcome.hospital.id);
  updateRows(db, batchId, [row.row], rowPatch(outcome, attempts));
  logger.log(outcome.kind === 'created' ? 'info' : 'warn', `row ${outcome.kind}`, {
    batch_id: batchId,
    row: row.row,
    attempts,
    ...(outcome.kind === 'created'
      ? { hospital_id: outcome.hospital.id, adopted: outcome.adopted }
      : { error: outcome.message }),
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
        ? { status: 'unknown' as const, errorMessage: `No answer from the directory after ${attempts} attempt(s) (${outcome.message}); it may have been created: resume the batch to check.`, attempts }
        : { status: 'failed' as const, errorMessage: `Not created after ${attempts} attempt(s): ${outcome.message}`, attempts };
  }
}

function finish(deps: ProcessDeps, batchId: string, startedAt: number, status: BatchStatus, error: string | null): BatchReport {
  const completedAt = Date.now();
  updateBatch(deps.db, batchId, { status, error, completedAt, processingMs: completedAt - startedAt });
  const batch = findBatch(deps.db, batchId)!;
  const report = toReport(batch, findRows(deps.db, batchId));
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
