import { setImmediate as nextTurn } from 'node:timers/promises';
import { CsvError, Parser } from 'csv-parse';
import type { CsvProblem } from '../errors.js';
import type { Delimiter } from './columns.js';

/** One record of a table (a CSV line or a worksheet row): its values and the line or row it starts on (1-based). */
export interface ParsedRecord {
  fields: string[];
  line: number;
}

/**
 * Cooperative scheduling for CPU-bound reading: work in small pieces and give the event loop
 * a turn once this reader's share of a turn has been spent. Every reader that yields runs
 * again in the next turn's check phase, one after another, before the loop comes back to
 * I/O; so the share is the turn's budget (TURN_MS) divided among the readers that yielded
 * last time. With ten hostile files read at once, a GET /health waits for one budget, not
 * for ten (`npm run bench -- hostile` measures it).
 */
export class Turns {
  static readonly TURN_MS = 4;
  /** The least a reader works before yielding: a piece must make progress. */
  static readonly MIN_SHARE_MS = 0.25;
  /** This turn's share per reader, and the readers that have yielded for the next turn. */
  private static share = Turns.TURN_MS;
  private static waiting = 0;
  private static counting = false;
  private started = performance.now();
  /** Whether this reader's share is spent: check it often, it costs one clock read. */
  due(): boolean {
    return performance.now() - this.started >= Turns.share;
  }
  async pass(): Promise<void> {
    Turns.waiting++;
    if (!Turns.counting) {
      Turns.counting = true;
      // Queued before this reader's own turn, so it runs first in the next check phase.
      setImmediate(() => {
        Turns.share = Math.max(Turns.MIN_SHARE_MS, Turns.TURN_MS / Turns.waiting);
        Turns.waiting = 0;
        Turns.counting = false;
      });
    }
    await nextTurn();
    this.started = performance.now();
  }
}

/** Bytes csv-parse is given at once: the most expensive kilobyte (all commas) takes about a millisecond. */
const PIECE_BYTES = 1024;
/**
 * Fields one record may have before reading stops: csv-parse finishes a record in one go,
 * and a megabyte of commas is a million-field record that would hold the event loop for
 * tens of milliseconds. A hospitals file has three columns; ten thousand is already absurd.
 */
export const MAX_FIELDS = 10_000;

const OPTIONS = {
  // Explicit: auto-detection locks onto the first ending it meets, and mixed files exist.
  record_delimiter: ['\r\n', '\n', '\r'],
  // Field counts are checked per row later, so every bad row is reported, not just the first.
  relax_column_count: true,
  // trim lets whitespace surround quotes and turns whitespace-only lines into skippable empty ones.
  trim: true,
  skip_empty_lines: true,
  // raw is each record's source text, preceded by the blank lines skipped before it.
  raw: true,
};

/**
 * Splits the text into non-blank records, each with the line it starts on, parsing a piece
 * at a time and giving the event loop its turns, and stopping after `maxRecords`
 * (`more` then says the text holds more). Lines are counted here from the raw text because
 * csv-parse's own counter is off after a CRLF inside quotes and only gives the line where a
 * record ends. A syntax error ends the reading with the problem that names its line.
 */
export async function parseRecords(
  text: string,
  { delimiter, maxRecords }: { delimiter: Delimiter; maxRecords: number },
  turns: Turns,
): Promise<{ records: ParsedRecord[]; more: boolean; syntax: CsvProblem | null }> {
  const { bytes, restore } = protectZeroWidthNoBreakSpace(text);
  const records: ParsedRecord[] = [];
  let nextLine = 1; // first line not consumed by an emitted record
  let more = false;
  let failure: unknown;
  /** The line where a record passed MAX_FIELDS. */
  let wideAt: number | undefined;
  const parser = new Parser({
    ...OPTIONS,
    delimiter,
    on_record: (emitted) => {
      if (records.length === maxRecords) {
        more = true;
        return null;
      }
      // With raw: true csv-parse hands over { record, raw }, not the bare fields its types promise.
      const { record, raw } = emitted as unknown as { record: string[]; raw: string };
      if (record.length > MAX_FIELDS) {
        wideAt ??= parser.info.lines;
        return null;
      }
      records.push({ fields: restore === null ? record : record.map(restore), line: nextLine + countLineBreaks(blankLinesAtStart(raw)) });
      nextLine += countLineBreaks(raw);
      return null; // collected above
    },
  });
  parser.on('error', (error) => (failure ??= error));
  const reading = () => !more && failure === undefined && wideAt === undefined;
  for (let offset = 0; offset < bytes.length && reading(); offset += PIECE_BYTES) {
    parser.write(bytes.subarray(offset, offset + PIECE_BYTES));
    if (fieldsInProgress(parser) > MAX_FIELDS) wideAt ??= parser.info.lines;
    // A write's error is emitted on the next tick: it has arrived once a turn has passed.
    if (turns.due()) await turns.pass();
  }
  await turns.pass();
  if (reading()) {
    await new Promise<void>((resolve) => {
      for (const event of ['finish', 'error', 'close']) parser.once(event, () => resolve());
      parser.end();
    });
  }
  parser.destroy();
  if (wideAt !== undefined) return { records, more, syntax: wideProblem(wideAt, records) };
  if (more || failure === undefined) return { records, more, syntax: null };
  if (!(failure instanceof CsvError)) throw failure;
  return { records, more, syntax: syntaxProblem(failure, nextLine, records.length === 0 ? null : records.length) };
}

/**
 * Fields of the record csv-parse is in the middle of. csv-parse keeps its parsing state on
 * the parser as `state` ("backward compatibility", lib/index.js) without typing it; if a
 * release drops it, records are only checked once complete (on_record above).
 */
function fieldsInProgress(parser: Parser): number {
  return (parser as Parser & { state?: { record?: unknown[] } }).state?.record?.length ?? 0;
}

function wideProblem(line: number, records: ParsedRecord[]): CsvProblem {
  const [header] = records;
  if (header === undefined) {
    return { row: null, line, column: null, message: `Line ${line}: the header has more than ${MAX_FIELDS} columns; the allowed columns are name, address, phone` };
  }
  return { row: records.length, line, column: null, message: `Line ${line} has more than ${MAX_FIELDS} fields; the header has ${header.fields.length}` };
}

/**
 * csv-parse's trim removes U+FEFF around unquoted values, as JavaScript's trim() does, but
 * the directory keeps it (src/bulk/whitespace.ts): a value of U+FEFF alone is one it
 * accepts. So U+FEFF is swapped for a private-use character the text does not hold while
 * parsing, and swapped back in each record kept (`restore`, null when the text has no
 * U+FEFF; a record has at most MAX_FIELDS fields). The file's leading BOM is already gone.
 */
function protectZeroWidthNoBreakSpace(text: string): { bytes: Buffer; restore: ((field: string) => string) | null } {
  const unchanged = { bytes: Buffer.from(text, 'utf8'), restore: null };
  if (!text.includes('\uFEFF')) return unchanged;
  const used = new Set<number>();
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0xe000 && code <= 0xf8ff) used.add(code);
  }
  let stand = 0xe000;
  while (used.has(stand) && stand <= 0xf8ff) stand++;
  // A file holding all 6,400 private-use characters keeps csv-parse's behaviour: U+FEFF is trimmed.
  if (stand > 0xf8ff) return unchanged;
  const standIn = String.fromCharCode(stand);
  return { bytes: Buffer.from(text.replaceAll('\uFEFF', standIn), 'utf8'), restore: (field) => field.replaceAll(standIn, '\uFEFF') };
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

/**
 * Whole lines made only of whitespace at the start of a record's raw text: the blank lines
 * skipped before it. JavaScript's \s is csv-parse's trim set (lib/api/init_state.js); the
 * native regex scan keeps a megabyte of spaces to about a millisecond.
 */
function blankLinesAtStart(raw: string): string {
  const content = raw.search(/\S/);
  const before = content === -1 ? raw : raw.slice(0, content);
  return raw.slice(0, Math.max(before.lastIndexOf('\n'), before.lastIndexOf('\r')) + 1);
}

/** CRLF, CR and LF each count once; a loop, since a record's raw text can be a megabyte of line breaks. */
function countLineBreaks(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 10) count++;
    else if (code === 13) {
      count++;
      if (text.charCodeAt(i + 1) === 10) i++;
    }
  }
  return count;
}
