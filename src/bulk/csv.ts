import { CsvError, parse } from 'csv-parse/sync';
import { AppError } from '../errors.js';
import type { CsvProblem } from '../errors.js';
import { FIELDS, fieldFor, type Delimiter, type Field } from './columns.js';

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
/** Keeps the error response small however hostile the file is. */
const MAX_LISTED_PROBLEMS = 50;
/** Longest piece of user text echoed back in a message. */
const MAX_ECHO = 40;

/** One record of a table (a CSV line or a worksheet row): its values and the line or row it starts on. */
export interface ParsedRecord {
  fields: string[];
  line: number;
}

/** What a table's header maps: each header as written and the field it fills. */
export interface ColumnMapping {
  header: string;
  field: Field;
}

export interface Inspected {
  rows: HospitalRow[];
  problems: CsvProblem[];
  columns: ColumnMapping[];
}

/**
 * Every row of a decoded CSV as read (problems or not) and every problem found, for a dry
 * run that shows the file with its errors marked and for an upload that refuses them.
 */
export function inspectHospitalsCsv(text: string, delimiter: Delimiter, limits: CsvLimits): Inspected {
  let records: ParsedRecord[];
  try {
    records = parseRecords(text, delimiter);
  } catch (error) {
    if (error instanceof AppError && error.code === 'invalid_csv') return { rows: [], problems: error.extra['errors'] as CsvProblem[], columns: [] };
    throw error;
  }
  return inspectRecords(records, limits);
}

/** The rules every table obeys, whatever file it came from: a header naming the columns, then rows. */
export function inspectRecords(records: ParsedRecord[], limits: CsvLimits): Inspected {
  const maxFieldLength = limits.maxFieldLength ?? MAX_FIELD_LENGTH;
  const [header, ...data] = records;
  if (header === undefined) {
    return {
      rows: [],
      problems: [fileProblem('The file is empty: expected a header row name,address,phone and at least one data row')],
      columns: [],
    };
  }

  const problems: CsvProblem[] = [];
  if (data.length === 0) problems.push(fileProblem('The file has a header but no data rows'));
  if (data.length > limits.maxRows) {
    problems.push(
      fileProblem(`The file has ${data.length} data rows; at most ${limits.maxRows} are allowed per upload`),
    );
  }
  const index = readHeader(header, problems);
  // Rows past the limit are not checked: the file has to be split anyway.
  const rows = data
    .slice(0, limits.maxRows)
    .map((record, i) => readRow(record, i + 1, header.fields.length, index, maxFieldLength, problems));
  const columns = [...index].sort((a, b) => a[1] - b[1]).map(([field, i]) => ({ header: header.fields[i]!.trim(), field }));
  return { rows, problems, columns };
}

/** Caps a problem list so a hostile file cannot make the answer huge. */
export function listedProblems(problems: CsvProblem[]): CsvProblem[] {
  const total = problems.length;
  return total > MAX_LISTED_PROBLEMS
    ? [...problems.slice(0, MAX_LISTED_PROBLEMS), fileProblem(`…and ${total - MAX_LISTED_PROBLEMS} more problems`)]
    : problems;
}

/**
 * Splits the text into non-blank records, each with the line it starts on. Lines are counted
 * here from the raw text because csv-parse's own counter is off after a CRLF inside quotes
 * and only gives the line where a record ends.
 */
function parseRecords(text: string, delimiter: Delimiter): ParsedRecord[] {
  const records: ParsedRecord[] = [];
  let nextLine = 1; // first line not consumed by an emitted record
  try {
    parse(text, {
      delimiter,
      // Explicit: auto-detection locks onto the first ending it meets, and mixed files exist.
      record_delimiter: ['\r\n', '\n', '\r'],
      // Field counts are checked per row below, so every bad row is reported, not just the first.
      relax_column_count: true,
      // trim lets whitespace surround quotes and turns whitespace-only lines into skippable empty ones.
      trim: true,
      skip_empty_lines: true,
      // raw is each record's source text, preceded by the blank lines skipped before it.
      raw: true,
      on_record: (emitted) => {
        // With raw: true csv-parse hands over { record, raw }, not the bare fields its types promise.
        const { record, raw } = emitted as unknown as { record: string[]; raw: string };
        records.push({ fields: record, line: nextLine + countLineBreaks(blankLinesAtStart(raw)) });
        nextLine += countLineBreaks(raw);
        return null; // collected above
      },
    });
  } catch (err) {
    if (!(err instanceof CsvError)) throw err;
    throw invalid([syntaxProblem(err, nextLine, records.length === 0 ? null : records.length)]);
  }
  return records;
}

/** Translates a csv-parse syntax error into a problem a spreadsheet user can act on. */
function syntaxProblem(err: CsvError, nextLine: number, row: number | null): CsvProblem {
  // raw runs from the end of the last good record to where parsing stopped.
  const raw = typeof err['raw'] === 'string' ? err['raw'] : '';
  const lineAt = (offset: number) => nextLine + countLineBreaks(raw.slice(0, offset));
  const problem = (line: number, what: string): CsvProblem => ({ row, line, column: null, message: `Line ${line}: ${what}` });
  switch (err.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      // csv-parse reports the last line of the file; the user needs the line where the quote opened.
      return problem(lineAt(unclosedQuoteOffset(raw)), 'a quoted value is never closed (check for a stray " character)');
    case 'INVALID_OPENING_QUOTE':
      return problem(
        lineAt(raw.length),
        'a " character appears inside a value that is not quoted; put the whole value in quotes and double the " inside it ("")',
      );
    case 'CSV_INVALID_CLOSING_QUOTE':
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return problem(
        lineAt(raw.length),
        'a quoted value is followed by more text before the next comma; put the whole value in quotes and double any " inside it ("")',
      );
    default:
      return problem(lineAt(raw.length), 'this line could not be read as CSV');
  }
}

/** Offset of the quote that opens a field never closed, replaying the only quoting csv-parse accepted up to there. */
function unclosedQuoteOffset(raw: string): number {
  let open = -1;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== '"') continue;
    if (open === -1) open = i;
    else if (raw[i + 1] === '"') i++;
    else open = -1;
  }
  return Math.max(open, 0);
}

function readHeader(header: ParsedRecord, problems: CsvProblem[]): Map<Column, number> {
  const index = new Map<Column, number>();
  const problem = (column: string | null, message: string) => problems.push({ row: null, line: header.line, column, message });
  header.fields.forEach((field, i) => {
    const written = field.trim();
    const name = fieldFor(written);
    const earlier = name === null ? undefined : index.get(name);
    if (written === '') problem(null, `Column ${i + 1} of the header has no name; ${ALLOWED}`);
    else if (name === null) problem(echo(written), `Unknown column "${echo(written)}"; ${ALLOWED}`);
    else if (earlier === undefined) index.set(name, i);
    else if (header.fields[earlier]!.trim().toLowerCase() === written.toLowerCase()) {
      problem(name, `Column "${echo(header.fields[earlier]!.trim())}" appears more than once in the header`);
    } else {
      const both = `"${echo(header.fields[earlier]!.trim())}" and "${echo(written)}"`;
      problem(name, `Columns ${both} both mean ${name}; keep one of them`);
    }
  });
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
  problems: CsvProblem[],
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
    problems.push({ row, line, column: null, message: `Line ${line} has ${count(fields.length, 'field')}; the header has ${width}` });
    // Shown as far as it goes (a dry run previews it), but its values are not checked.
    for (const column of COLUMNS) {
      const i = index.get(column);
      if (i !== undefined) values.set(column, (fields[i] ?? '').trim());
    }
    return read();
  }
  for (const column of COLUMNS) {
    const i = index.get(column);
    if (i === undefined) continue;
    const value = (fields[i] ?? '').trim();
    values.set(column, value);
    const what = valueProblem(column, value, maxFieldLength);
    if (what) problems.push({ row, line, column, message: `Line ${line}: ${what}` });
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

/** The refusal of a file with problems; `what` names the file ("CSV", "workbook"). */
export function invalid(problems: CsvProblem[], what = 'CSV'): AppError {
  return new AppError('invalid_csv', `The ${what} has ${count(problems.length, 'problem')}; nothing was created.`, {
    errors: listedProblems(problems),
  });
}

function fileProblem(message: string): CsvProblem {
  return { row: null, line: null, column: null, message };
}

/** Whole lines made only of whitespace at the start of a record's raw text: the skipped blank lines. */
function blankLinesAtStart(raw: string): string {
  return /^(?:[^\S\r\n]*(?:\r\n|\r|\n))*/.exec(raw)?.[0] ?? '';
}

function countLineBreaks(text: string): number {
  return text.match(/\r\n|\r|\n/g)?.length ?? 0;
}

function echo(text: string): string {
  return text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}…` : text;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
