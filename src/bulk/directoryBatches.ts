import { randomUUID } from 'node:crypto';
import type { RowRecord } from '../db/store.js';

/** The most hospitals the directory holds in one batch (CONTRACT.md): a bigger file is split. */
export const DIRECTORY_BATCH_SIZE = 20;

/**
 * The most rows MAX_ROWS may allow in one upload: 50 directory batches, and at 30 creates a
 * minute (the directory's limit) already more than half an hour of work.
 */
export const MAX_ROWS_LIMIT = 1000;

/** One directory batch of an upload: a run of at most 20 rows, in file order. */
export interface DirectoryBatch<R extends Pick<RowRecord, 'row' | 'directoryBatchId'> = RowRecord> {
  id: string;
  firstRow: number;
  lastRow: number;
  rows: R[];
}

/**
 * Gives each row of an upload its directory batch: rows 1–20 go in the upload's own id (so a
 * file of at most 20 rows is one directory batch, as it always was), each further 20 in a
 * fresh id, chosen once here and stored with the rows, so a resume or a take-over creates
 * every row where it belongs.
 */
export function inDirectoryBatches<R extends object>(batchId: string, rows: readonly R[]): (R & { directoryBatchId: string })[] {
  const ids: string[] = [];
  return rows.map((row, index) => {
    const part = Math.floor(index / DIRECTORY_BATCH_SIZE);
    ids[part] ??= part === 0 ? batchId : randomUUID();
    return { ...row, directoryBatchId: ids[part] };
  });
}

/** The upload's directory batches, in file order. */
export function directoryBatchesOf<R extends Pick<RowRecord, 'row' | 'directoryBatchId'>>(rows: readonly R[]): DirectoryBatch<R>[] {
  const parts: DirectoryBatch<R>[] = [];
  const byId = new Map<string, DirectoryBatch<R>>();
  for (const row of rows) {
    let part = byId.get(row.directoryBatchId);
    if (!part) {
      part = { id: row.directoryBatchId, firstRow: row.row, lastRow: row.row, rows: [] };
      byId.set(part.id, part);
      parts.push(part);
    }
    part.rows.push(row);
    part.firstRow = Math.min(part.firstRow, row.row);
    part.lastRow = Math.max(part.lastRow, row.row);
  }
  return parts;
}

/** Whether the upload was split across directory batches (more than 20 rows): only then does its report name them. */
export function isSplit(rows: readonly Pick<RowRecord, 'directoryBatchId'>[]): boolean {
  return rows.some((row) => row.directoryBatchId !== rows[0]!.directoryBatchId);
}
