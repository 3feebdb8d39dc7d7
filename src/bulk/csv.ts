import { AppError } from '../errors.js';
import type { CsvProblem } from '../errors.js';
import { FIELDS, fieldFor, type Delimiter, type Field } from './columns.js';
import { MAX_ROWS_LIMIT } from './directoryBatches.js';
import { parseRecords, Turns, type ParsedRecord } from './csvRecords.js';
import { strip } from './whitespace.js';

export type { ParsedRecord } from './csvRecords.js';

/** One data row of an uploaded hospitals CSV, with where it came from. */
export interface HospitalRow {
  /** Data row, 1-based (the header is not counted). */
  row: number;
  /** Physical line where the record starts, 1-based. */
  line: number;
  name: string;
  address: string;
  phone: string | null;
}

/** Limits applied to one upload. */
export interface CsvLimits {
  maxRows: number;
  /** Default 255. */
  maxFieldLength?: number;
}

const COLUMNS = FIELDS;
type Column = Field;
const REQUIRED: readonly Column[] = ['name', 'address'];
const ALLOWED = `allowed columns are ${COLUMNS.join(', ')}`;
/** The longest value a row may hold, unless the limits say otherwise. */
export const MAX_FIELD_LENGTH = 255;
/** Keeps the error response small however hostile the file's header is: its problems past these are only counted. */
const MAX_LISTED_FILE_PROBLEMS = 50;
/** Longest piece of user text echoed back in a message. */
const MAX_ECHO = 40;
/**
 * Row problems listed at most: a row has at most four (wrong field count, name, address,
 * phone), so every problem of a file of MAX_ROWS_LIMIT rows is listed at once.
 */
const MAX_KEPT_PROBLEMS = 4 * MAX_ROWS_LIMIT;

/** What a table's header maps: each header as written and the field it fills. */
export interface ColumnMapping {
  header: string;
  field: Field;
}

/** What an upload is told about its table: every row as read, the problems, how many there are in all, and the header's mapping. */
export interface Inspected {
  rows: HospitalRow[];
  /** The problems to list, in file order: every row problem, and the first 50 about the file or its header (ProblemLog). */
  problems: CsvProblem[];
  problemCount: number;
  columns: ColumnMapping[];
}

/**
 * Every row of a decoded CSV as read (problems or not) and every problem found, for a dry
 * run that shows the file with its errors marked and for an upload that refuses them.
 * Reading stops once the file is known to hold more than `maxRows` data rows, and yields
 * to the event loop as it goes, so no file holds the service for long.
 */
export async function inspectHospitalsCsv(text: string, delimiter: Delimiter, limits: CsvLimits): Promise<Inspected> {
  const turns = new Turns();
  // The header, the rows allowed and one more: enough to know the file is too long.
  const { records, more, syntax } = await parseRecords(text, { delimiter, maxRecords: limits.maxRows + 2 }, turns);
  if (syntax) return { rows: [], problems: [syntax], problemCount: 1, columns: [] };
  return inspectRecords(records, limits, { more, turns });
}

/**
 * The rules every table obeys, whatever file it came from: a header naming the columns, then
 * rows. `more` says the reader stopped early with more records left. Blank is Python's
 * blank (whitespace.ts), for header names as for values.
 */
export async function inspectRecords(
  records: ParsedRecord[],
  limits: CsvLimits,
  { more = false, turns = new Turns() }: { more?: boolean; turns?: Turns } = {},
): Promise<Inspected> {
  const maxFieldLength = limits.maxFieldLength ?? MAX_FIELD_LENGTH;
  const [header, ...data] = records;
  if (header === undefined) {
    const empty = fileProblem('The file is empty: expected a header row name,address,phone and at least one data row');
    return { rows: [], problems: [empty], problemCount: 1, columns: [] };
  }

  const problems = new ProblemLog();
  if (data.length === 0) problems.add(fileProblem('The file has a header but no data rows'));
  if (more || data.length > limits.maxRows) {
    problems.add(fileProblem(tooManyRows(limits.maxRows)));
  }
  const index = await readHeader(header, problems, turns);
  // Rows past the limit are not checked: the file has to be split anyway.
  const rows = data
    .slice(0, limits.maxRows)
    .map((record, i) => readRow(record, i + 1, header.fields.length, index, maxFieldLength, problems));
  const columns = [...index].sort((a, b) => a[1] - b[1]).map(([field, i]) => ({ header: strip(header.fields[i]!), field }));
  return { rows, problems: problems.kept, problemCount: problems.count, columns };
}

/** Why a file is too long, and what can be done: split it, or have an operator raise MAX_ROWS. */
function tooManyRows(maxRows: number): string {
  const hint =
    maxRows < MAX_ROWS_LIMIT
      ? `split the file, or ask an operator to raise MAX_ROWS (up to ${MAX_ROWS_LIMIT})`
      : 'split the file';
  return `The file has more than ${maxRows} data rows; at most ${maxRows} are allowed per upload: ${hint}`;
}

/** The problems kept (see ProblemLog), and how many more were only counted. */
export function listedProblems(problems: CsvProblem[], total = problems.length): CsvProblem[] {
  return total > problems.length ? [...problems, fileProblem(`…and ${total - problems.length} more problems`)] : problems;
}

/**
 * Problems in the order found: all counted; kept (to be listed) are the first 50 about the
 * file or its header and the first MAX_KEPT_PROBLEMS about rows, so however hostile the file
 * the answer stays small, and a real file's every row problem is listed at once.
 */
class ProblemLog {
  readonly kept: CsvProblem[] = [];
  count = 0;
  private fileProblems = 0;
  private rowProblems = 0;
  add(problem: CsvProblem): void {
    this.count += 1;
    const keep = problem.row === null ? this.fileProblems++ < MAX_LISTED_FILE_PROBLEMS : this.rowProblems++ < MAX_KEPT_PROBLEMS;
    if (keep) this.kept.push(problem);
  }
}

async function readHeader(header: ParsedRecord, problems: ProblemLog, turns: Turns): Promise<Map<Column, number>> {
  const index = new Map<Column, number>();
  const problem = (column: string | null, message: string) => problems.add({ row: null, line: header.line, column, message });
  for (const [i, field] of header.fields.entries()) {
    // A hostile header has thousands of fields: every 256th, see whether the event loop is due a turn.
    if (i % 256 === 255 && turns.due()) await turns.pass();
    const written = strip(field);
    const name = fieldFor(written);
    const earlier = name === null ? undefined : index.get(name);
    if (written === '') problem(null, `Column ${i + 1} of the header has no name; ${ALLOWED}`);
    else if (name === null) problem(echo(written), `Unknown column "${echo(written)}"; ${ALLOWED}`);
    else if (earlier === undefined) index.set(name, i);
    else if (strip(header.fields[earlier]!).toLowerCase() === written.toLowerCase()) {
      problem(name, `Column "${echo(strip(header.fields[earlier]!))}" appears more than once in the header`);
    } else {
      const both = `"${echo(strip(header.fields[earlier]!))}" and "${echo(written)}"`;
      problem(name, `Columns ${both} both mean ${name}; keep one of them`);
    }
  }
  for (const column of REQUIRED) {
    if (!index.has(column)) problem(column, `Required column "${column}" is missing from the header`);
  }
  return index;
}

function readRow(
  record: ParsedRecord,
  row: number,
  width: number,
  index: Map<Column, number>,
  maxFieldLength: number,
  problems: ProblemLog,
): HospitalRow {
  const { fields, line } = record;
  const values = new Map<Column, string>();
  const read = (): HospitalRow => ({
    row,
    line,
    name: values.get('name') ?? '',
    address: values.get('address') ?? '',
    phone: values.get('phone') || null,
  });
  if (fields.length !== width) {
    problems.add({ row, line, column: null, message: `Line ${line} has ${count(fields.length, 'field')}; the header has ${width}` });
    // Shown as far as it goes (a dry run previews it), but its values are not checked.
    for (const column of COLUMNS) {
      const i = index.get(column);
      if (i !== undefined) values.set(column, strip(fields[i] ?? ''));
    }
    return read();
  }
  for (const column of COLUMNS) {
    const i = index.get(column);
    if (i === undefined) continue;
    // Python's strip, as the directory's: blank here exactly when it would refuse the value.
    const value = strip(fields[i] ?? '');
    values.set(column, value);
    const what = valueProblem(column, value, maxFieldLength);
    if (what) problems.add({ row, line, column, message: `Line ${line}: ${what}` });
  }
  return read();
}

/**
 * What is wrong with one value of a row, already stripped, by the rules every upload applies
 * (name and address required, every value at most `maxFieldLength` characters); null if
 * nothing. A row edit is checked by the same rules.
 */
export function valueProblem(column: Column, value: string, maxFieldLength = MAX_FIELD_LENGTH): string | null {
  if (value === '' && REQUIRED.includes(column)) return `${column} is required`;
  if (value.length > maxFieldLength) return `${column} is ${value.length} characters long; at most ${maxFieldLength} characters are allowed`;
  return null;
}

/** The refusal of a file with problems (`total` of them, the first `problems` listed); `what` names the file ("CSV", "workbook"). */
export function invalid(problems: CsvProblem[], what = 'CSV', total = problems.length): AppError {
  return new AppError('invalid_csv', `The ${what} has ${count(total, 'problem')}; nothing was created.`, {
    errors: listedProblems(problems, total),
  });
}

function fileProblem(message: string): CsvProblem {
  return { row: null, line: null, column: null, message };
}

function echo(text: string): string {
  return text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}…` : text;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
