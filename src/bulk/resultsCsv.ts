import type { BatchRecord, RowRecord } from '../db/store.js';

import { isSplit } from './directoryBatches.js';

const COLUMNS = ['row', 'name', 'address', 'phone', 'hospital_id', 'status', 'error_message'] as const;

/**
 * A batch's outcome as a CSV to open in a spreadsheet: one line per row. A value that a
 * spreadsheet would run as a formula (starting with = + - @, or a tab or carriage return)
 * gets a leading apostrophe, as OWASP recommends against CSV injection. The BOM makes
 * Excel open it as UTF-8, whatever encoding the upload was in.
 */
export function toResultsCsv(rows: RowRecord[]): string {
  // A file split across directory batches (more than 20 rows) says which one each row is in.
  const split = isSplit(rows);
  const header = split ? [...COLUMNS.slice(0, 5), 'directory_batch_id', ...COLUMNS.slice(5)] : COLUMNS;
  const lines = rows.map((row) =>
    [row.row, row.name, row.address, row.phone, row.hospitalId, ...(split ? [row.directoryBatchId] : []), row.status, row.errorMessage].map(cell).join(','),
  );
  return `\uFEFF${[header.join(','), ...lines].join('\r\n')}\r\n`;
}

/** The download's file name, after the upload's: `hospitals.csv` (or `.xlsx`) → `hospitals-results.csv`. */
export function resultsFilename(batch: BatchRecord): string {
  return `${batch.filename.replace(/\.(csv|tsv|txt|xlsx)$/i, '')}-results.csv`;
}

function cell(value: string | number | null): string {
  if (value === null) return '';
  let text = String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
