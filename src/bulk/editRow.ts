import type { RowRecord, RowValues, Store } from '../db/store.js';
import { AppError, type CsvProblem } from '../errors.js';
import type { Logger } from '../logger.js';
import { FIELDS, type Field } from './columns.js';
import { valueProblem } from './csv.js';
import { outcome, type BatchOutcome } from './run.js';
import { EDITABLE_ROWS, ROW_EDITABLE_BATCHES } from './status.js';
import { strip } from './whitespace.js';

/** New values for a row, as sent: any of the three fields; the rest keep theirs. */
export type RowEdit = Partial<{ name: string; address: string; phone: string | null }>;

/**
 * Fix and finish: a person corrects a row that was not created (the directory refused it,
 * or it failed), checked by the same rules as an upload's rows, so that a resume can
 * create it. Only while no run holds the batch, and only for a row known not to exist
 * upstream; nothing changes unless everything is right. `by` (the caller's key name) goes
 * into the batch's audit.
 */
export async function editRow(
  deps: { store: Store; logger: Logger },
  batchId: string,
  rowNumber: number,
  edit: RowEdit,
  by: string | null = null,
): Promise<BatchOutcome> {
  const values = checkedValues(edit, rowNumber);
  const before = (await deps.store.findRows(batchId)).find((row) => row.row === rowNumber);
  if (before) assertChanged(before, values);

  const result = await deps.store.editRow(batchId, rowNumber, values);
  switch (result.kind) {
    case 'not_found':
      throw new AppError('not_found', before === undefined && (await deps.store.findBatch(batchId)) ? `Batch ${batchId} has no row ${rowNumber}.` : `No batch with id ${batchId}.`);
    case 'batch_conflict':
      throw new AppError(
        'conflict',
        result.status === 'rolled_back'
          ? 'The batch is rolled back: its rows can no longer be edited. Upload the file again instead.'
          : `The batch is ${result.status}; rows can be edited only once it has stopped (${ROW_EDITABLE_BATCHES.slice(0, -1).join(', ')} or ${ROW_EDITABLE_BATCHES.at(-1)}).`,
        { batch_id: batchId, batch_status: result.status },
      );
    case 'row_conflict':
      throw new AppError('conflict', rowConflict(rowNumber, result.status), { batch_id: batchId, row: rowNumber, row_status: result.status });
    case 'edited':
      deps.logger.info('row edited', { batch_id: batchId, row: rowNumber, fields: Object.keys(values) });
      await deps.store.appendAudit(batchId, { action: 'edit_row', by });
      return outcome(deps.store, batchId);
  }
}

/** The values as they will be stored, by the upload's rules (Python's strip, required, length); 400 listing every problem. */
function checkedValues(edit: RowEdit, row: number): RowValues {
  const given = FIELDS.filter((field) => edit[field] !== undefined);
  if (given.length === 0) throw new AppError('bad_request', 'Send at least one of name, address and phone.');
  const values: RowValues = {};
  const problems: CsvProblem[] = [];
  for (const field of given) {
    const value = strip(edit[field] ?? '');
    const what = valueProblem(field, value);
    if (what) problems.push({ row, line: null, column: field, message: `Row ${row}: ${what}` });
    if (field === 'phone') values.phone = value || null;
    else values[field] = value;
  }
  if (problems.length > 0) {
    throw new AppError('bad_request', `${problems.map((p) => p.message).join('; ')}. Nothing was changed.`, { errors: problems });
  }
  return values;
}

/** The directory refused the row as it stands: sending it unchanged would only be refused again. */
function assertChanged(row: RowRecord, values: RowValues): void {
  const changed = (Object.keys(values) as Field[]).some((field) => values[field] !== row[field]);
  if (row.rejected && !changed) {
    throw new AppError(
      'bad_request',
      `Row ${row.row} already has these values, and the directory rejected them (${row.errorMessage ?? 'no reason given'}). Change name, address or phone.`,
    );
  }
}

function rowConflict(row: number, status: RowRecord['status']): string {
  switch (status) {
    case 'unknown':
      return `Row ${row}'s outcome is unknown: it may exist in the directory. Resume the batch first to settle it; edit it afterwards if it failed.`;
    case 'creating':
      return `Row ${row} is being sent to the directory right now.`;
    case 'deleted':
      return `Row ${row} was rolled back.`;
    default:
      return `Row ${row} is already ${status === 'created' ? 'created' : 'created and activated'} in the directory; only rows not created (${EDITABLE_ROWS.join(', ')}) can be edited.`;
  }
}
