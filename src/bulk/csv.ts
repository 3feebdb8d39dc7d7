import { AppError } from '../errors.js';
import type { CsvProblem } from '../errors.js';
import { parseRecords, Turns, type ParsedRecord } from './csvRecords.js';
import { strip } from './whitespace.js';

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

const COLUMNS = ['name', 'address', 'phone'] as const;
type Column = (typeof COLUMNS)[number];
const REQUIRED: readonly Column[] = ['name', 'address'];
const ALLOWED = `allowed columns are ${COLUMNS.join(', ')}`;
/** Keeps the error response small however hostile the file is. */
const MAX_LISTED_PROBLEMS = 50;
/** Longest piece of user text echoed back in a message. */
const MAX_ECHO = 40;
const ZIP_MAGIC = Buffer.from('PK\x03\x04', 'latin1');
const SAVE_AS_UTF8 = 'Upload a CSV saved as UTF-8 (in Excel: "CSV UTF-8").';

/** Readers and the dry run list at most this many problems; the rest are only counted. */
const MAX_KEPT_PROBLEMS = 1_000;

/** What an upload is told about its file: every row as read, the problems, and how many there are in all. */
export interface Inspection {
  rows: HospitalRow[];
  /** The first 1,000 problems in file order: more than a file of MAX_ROWS rows can have, except in its header. */
  problems: CsvProblem[];
  problemCount: number;
}

/** Reads an uploaded CSV into hospital rows, or throws AppError with every problem found. */
export async function readHospitalsCsv(content: Buffer, limits: CsvLimits): Promise<HospitalRow[]> {
  const { rows, problems, problemCount } = await inspectHospitalsCsv(content, limits);
  if (problemCount > 0) throw invalid(problems, problemCount);
  return rows;
}

/**
 * Every row as read (problems or not) and every problem found, for a dry run that shows
 * the file with its errors marked. Throws only when the bytes are not UTF-8 text at all.
 * Reading stops once the file is known to hold more than `maxRows` data rows, and yields
 * to the event loop as it goes, so no file holds the service for long.
 */
export async function inspectHospitalsCsv(content: Buffer, limits: CsvLimits): Promise<Inspection> {
  const maxFieldLength = limits.maxFieldLength ?? 255;
  const text = decode(content);
  // The header, the rows allowed and one more: enough to know the file is too long.
  const turns = new Turns();
  const { records, more, syntax, restore } = await parseRecords(text, limits.maxRows + 2, turns);
  if (syntax) return { rows: [], problems: [syntax], problemCount: 1 };
  const [header, ...data] = records;
  if (header === undefined) {
    const empty = fileProblem('The file is empty: expected a header row name,address,phone and at least one data row');
    return { rows: [], problems: [empty], problemCount: 1 };
  }

  const problems = new ProblemLog();
  if (data.length === 0) problems.add(fileProblem('The file has a header but no data rows'));
  if (more || data.length > limits.maxRows) {
    problems.add(fileProblem(`The file has more than ${limits.maxRows} data rows; at most ${limits.maxRows} are allowed per upload`));
  }
  const index = await readHeader(header, restore, problems, turns);
  // Rows past the limit are not checked: the file has to be split anyway.
  const rows = data
    .slice(0, limits.maxRows)
    .map((record, i) => readRow(record, i + 1, header.fields.length, index, { maxFieldLength, restore }, problems));
  return { rows, problems: problems.kept, problemCount: problems.count };
}

/** Caps a problem list so a hostile file cannot make the answer huge. */
export function listedProblems(problems: CsvProblem[], total = problems.length): CsvProblem[] {
  return total > MAX_LISTED_PROBLEMS
    ? [...problems.slice(0, MAX_LISTED_PROBLEMS), fileProblem(`…and ${total - MAX_LISTED_PROBLEMS} more problems`)]
    : problems;
}

/** Problems in the order found: all counted, the first MAX_KEPT_PROBLEMS kept. */
class ProblemLog {
  readonly kept: CsvProblem[] = [];
  count = 0;
  add(problem: CsvProblem): void {
    if (this.count++ < MAX_KEPT_PROBLEMS) this.kept.push(problem);
  }
}

function decode(content: Buffer): string {
  const utf16 = (content[0] === 0xff && content[1] === 0xfe) || (content[0] === 0xfe && content[1] === 0xff);
  if (utf16) {
    throw new AppError(
      'unsupported_media_type',
      'The file is UTF-16 text; only UTF-8 is accepted. Save the CSV as UTF-8 and upload it again.',
    );
  }
  // An .xlsx workbook is a zip: the most likely binary upload, so name it.
  if (content.subarray(0, 4).equals(ZIP_MAGIC)) {
    throw new AppError(
      'unsupported_media_type',
      `The file is not UTF-8 text (it looks like a zip file or an Excel workbook). ${SAVE_AS_UTF8}`,
    );
  }
  // NUL never appears in UTF-8 text but is everywhere in binary files (and in UTF-16 without a BOM).
  if (content.includes(0)) {
    throw new AppError('unsupported_media_type', `The file is not UTF-8 text (it looks like a binary file). ${SAVE_AS_UTF8}`);
  }
  try {
    // TextDecoder drops a UTF-8 BOM, so the first header name comes out clean.
    return new TextDecoder('utf-8', { fatal: true }).decode(content);
  } catch {
    throw new AppError(
      'unsupported_media_type',
      `The file is not UTF-8 text (it has bytes that are not valid UTF-8, as in a file saved as Latin-1 or Windows-1252). ${SAVE_AS_UTF8}`,
    );
  }
}

async function readHeader(
  header: ParsedRecord,
  restore: (field: string) => string,
  problems: ProblemLog,
  turns: Turns,
): Promise<Map<Column, number>> {
  const index = new Map<Column, number>();
  const problem = (column: string | null, message: string) => problems.add({ row: null, line: header.line, column, message });
  for (const [i, field] of header.fields.entries()) {
    // A hostile header has a million fields: every 256th, see whether the event loop is due a turn.
    if (i % 256 === 255 && turns.due()) await turns.pass();
    const written = strip(restore(field));
    const name = written.toLowerCase();
    if (written === '') problem(null, `Column ${i + 1} of the header has no name; ${ALLOWED}`);
    else if (!isColumn(name)) problem(echo(written), `Unknown column "${echo(written)}"; ${ALLOWED}`);
    else if (index.has(name)) problem(name, `Column "${name}" appears more than once in the header`);
    else index.set(name, i);
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
  { maxFieldLength, restore }: { maxFieldLength: number; restore: (field: string) => string },
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
      if (i !== undefined) values.set(column, strip(restore(fields[i] ?? '')));
    }
    return read();
  }
  for (const column of COLUMNS) {
    const i = index.get(column);
    if (i === undefined) continue;
    // Python's strip, as the directory's: blank here exactly when it would refuse the value.
    const value = strip(restore(fields[i] ?? ''));
    values.set(column, value);
    const problem = (what: string) => problems.add({ row, line, column, message: `Line ${line}: ${what}` });
    if (value === '' && REQUIRED.includes(column)) problem(`${column} is required`);
    else if (value.length > maxFieldLength) {
      problem(`${column} is ${value.length} characters long; at most ${maxFieldLength} characters are allowed`);
    }
  }
  return read();
}

function invalid(problems: CsvProblem[], total: number): AppError {
  return new AppError('invalid_csv', `The CSV has ${count(total, 'problem')}; nothing was created.`, {
    errors: listedProblems(problems, total),
  });
}

function fileProblem(message: string): CsvProblem {
  return { row: null, line: null, column: null, message };
}

function isColumn(name: string): name is Column {
  return (COLUMNS as readonly string[]).includes(name);
}

function echo(text: string): string {
  return text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}…` : text;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
