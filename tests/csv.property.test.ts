/**
 * Property tests of the CSV reader: any table written as CSV (any quoting, BOM, line
 * endings, padding, column order) reads back exactly, or is refused with problems that
 * name the row, line and column; any bytes at all give rows or an AppError, nothing else.
 *
 * "Characters" are JS string length (UTF-16 code units), as the reader counts them: an
 * emoji is 2, "e" + U+0301 is 2. The 255 limit is modelled the same way.
 */
import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import type { CsvLimits, HospitalRow } from '../src/bulk/csv.js';
import { inspectUpload, readUpload } from '../src/bulk/read.js';
import { strip } from '../src/bulk/whitespace.js';
import { AppError, type CsvProblem } from '../src/errors.js';

const MAX = 255;
const NUM_RUNS = 400;
const COLUMNS = ['name', 'address', 'phone'] as const;
type Column = (typeof COLUMNS)[number];
type Table = Record<Column, string>[];
const BINARY =
  'The file is not text we can read (it looks like a binary file); we read UTF-8, UTF-16 with a byte order mark (Excel\'s "Unicode Text"), or Windows-1252. Save it from Excel as "CSV UTF-8" or as an Excel workbook (.xlsx) and upload it again.';
const readHospitalsCsv = async (bytes: Buffer, limits: CsvLimits) => (await readUpload(bytes, limits)).rows;
const inspectHospitalsCsv = async (bytes: Buffer, limits: CsvLimits) => {
  const { rows, problems, problemCount } = await inspectUpload(bytes, limits);
  return { rows, problems, problemCount };
};
/** Bytes with no character in Windows-1252 (Microsoft's table leaves them undefined). */
const CP1252_HOLES = [0x81, 0x8d, 0x8f, 0x90, 0x9d];

/** Whether the reader must refuse these bytes as text it cannot read (415), by the rules in README "What files we read". */
function notReadableText(bytes: Buffer): boolean {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    const body = bytes[0] === 0xff ? bytes.subarray(2) : Buffer.from(bytes.subarray(2)).swap16();
    if (body.length % 2 !== 0) return true;
    try {
      return new TextDecoder('utf-16le', { fatal: true }).decode(body).includes('\u0000');
    } catch {
      return true;
    }
  }
  if (bytes.includes(0)) return true;
  if (isUtf8(bytes)) return false;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return true;
  return bytes.some((b) => CP1252_HOLES.includes(b));
}

// ---------------------------------------------------------------------------------------------
// Generators

/** One piece of a value: CSV syntax, every kind of whitespace and line break, any code point but NUL. */
const piece = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(',', '"', '""', '\r', '\n', '\r\n', ' ', '  ', '\t', '\u000b', '\f') },
  { weight: 2, arbitrary: fc.constantFrom('\u00a0', '\u1680', '\u2003', '\u2028', '\u2029', '\u202f', '\u3000', '\uFEFF', '\u0085', '\u200b') },
  { weight: 4, arbitrary: fc.constantFrom('é', '🏥', '北京', 'e\u0301', 'שלום', '=', '+', '@', '-', "'", '\\', ';', '#') },
  { weight: 6, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 4 }) },
  // Any code point except NUL (a NUL makes the whole file binary: see its own property below).
  { weight: 3, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }).map((s) => s.replaceAll('\u0000', 'x')) },
);

const shortValue = fc.array(piece, { maxLength: 8 }).map((pieces) => pieces.join(''));
/** Nothing left after trim. */
const blankValue = fc.constantFrom('', ' ', '   ', '\t', '\r\n', ' \n ', '\u00a0', '\u3000', '\uFEFF', '\u2028', ' \t\r\n\u00a0');
/** Around the 255 limit once trimmed (and well past it), with whitespace and syntax around and inside. */
const longValue = fc
  .tuple(shortValue, fc.integer({ min: 245, max: 265 }), fc.constantFrom('x', 'é', '🏥', ',', '"', ' '), shortValue)
  .map(([before, length, fill, after]) => {
    // Whole repetitions of the fill, so an emoji is never cut into a lone surrogate.
    const core = fill.repeat(Math.ceil(Math.max(0, length - before.length - after.length) / fill.length));
    return `${before}${core}${after}`;
  });
/** Over 255 whatever the trim does. */
const tooLongValue = fc
  .tuple(shortValue, fc.integer({ min: 256, max: 300 }), shortValue)
  .map(([before, length, after]) => `${before}${'y'.repeat(length)}${after}`);
const value = fc.oneof({ weight: 8, arbitrary: shortValue }, { weight: 2, arbitrary: blankValue }, { weight: 1, arbitrary: longValue });
const phoneValue = fc.oneof({ weight: 2, arbitrary: value }, { weight: 1, arbitrary: fc.constant('') });

/** Something left after trim. */
const filledValue = fc
  .tuple(shortValue, fc.string({ unit: 'grapheme', minLength: 1, maxLength: 3 }).filter((g) => strip(g) !== '' && !g.includes('\u0000')), shortValue)
  .map(([before, core, after]) => `${before}${core}${after}`);

const table: fc.Arbitrary<Table> = fc.oneof(
  // Anything: blank, long and fine values mixed.
  { weight: 4, arbitrary: fc.array(fc.record({ name: value, address: value, phone: phoneValue }), { minLength: 1, maxLength: 20 }) },
  // Mostly valid: the read-back path, unless a long value slips in.
  {
    weight: 4,
    arbitrary: fc.array(
      fc.record({
        name: fc.oneof({ weight: 9, arbitrary: filledValue }, { weight: 1, arbitrary: value }),
        address: fc.oneof({ weight: 9, arbitrary: filledValue }, { weight: 1, arbitrary: value }),
        phone: phoneValue,
      }),
      { minLength: 1, maxLength: 20 },
    ),
  },
  // Up to three problems a row on up to 20 rows: past the 50 listed.
  {
    weight: 1,
    arbitrary: fc.array(
      fc.record({ name: fc.oneof(blankValue, tooLongValue), address: fc.oneof(blankValue, tooLongValue), phone: tooLongValue }),
      { minLength: 17, maxLength: 20 },
    ),
  },
);

/** How the file is written: every choice a spreadsheet or a hand-made file could make. */
const style = fc.record({
  quoteAll: fc.boolean(),
  bom: fc.boolean(),
  ending: fc.constantFrom('\n', '\r\n', '\r'),
  order: fc.constantFrom<readonly Column[]>(
    ['name', 'address', 'phone'],
    ['name', 'phone', 'address'],
    ['address', 'name', 'phone'],
    ['address', 'phone', 'name'],
    ['phone', 'name', 'address'],
    ['phone', 'address', 'name'],
  ),
  upperHeader: fc.boolean(),
  /** Spaces or tabs around each field, outside any quotes. */
  pad: fc.constantFrom('', '', ' ', '\t', '  '),
  /** Blank or whitespace-only lines before the header. */
  leadingBlankLines: fc.array(fc.constantFrom('', ' ', ' \t '), { maxLength: 2 }),
  /** How many blank or whitespace-only lines come before data row i + 1 (none past the array's end). */
  blankLinesBefore: fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 20 }),
  blankLine: fc.constantFrom('', ' ', '\t\t'),
  finalEnding: fc.boolean(),
});
type Style = typeof style extends fc.Arbitrary<infer T> ? T : never;

// ---------------------------------------------------------------------------------------------
// A small CSV writer and the model of what the reader must return

/**
 * Quotes every field, or only those holding a comma, quote or line break. Surrounding
 * whitespace needs no quotes: the reader trims it either way, so the model trims too.
 */
function cell(text: string, s: Style): string {
  const quoted = s.quoteAll || /[",\r\n]/.test(text);
  return `${s.pad}${quoted ? `"${text.replaceAll('"', '""')}"` : text}${s.pad}`;
}

function writeCsv(rows: Table, s: Style): Buffer {
  const header = s.order.map((column) => cell(s.upperHeader ? column.toUpperCase() : column, s)).join(',');
  const records = [
    header,
    ...rows.flatMap((row, i) => [
      ...Array.from({ length: s.blankLinesBefore[i] ?? 0 }, () => s.blankLine),
      s.order.map((column) => cell(row[column], s)).join(','),
    ]),
  ];
  const text = [...s.leadingBlankLines, ...records].join(s.ending) + (s.finalEnding ? s.ending : '');
  return Buffer.from(`${s.bom ? '\uFEFF' : ''}${text}`, 'utf8');
}

const lineBreaks = (text: string) => text.match(/\r\n|\r|\n/g)?.length ?? 0;

interface Expected {
  rows: HospitalRow[];
  problems: { row: number; line: number; column: Column; message: RegExp }[];
}

/**
 * What the reader must return: every value stripped as Python strips it (the directory's
 * rule, src/bulk/whitespace.ts), blank phone null; problems in row then column order
 * (name, address, phone, whatever the header's order).
 */
function expected(rows: Table, s: Style): Expected {
  let line = s.leadingBlankLines.length + 2; // the header is one line with no breaks inside
  const out: Expected = { rows: [], problems: [] };
  rows.forEach((written, i) => {
    const row = i + 1;
    line += s.blankLinesBefore[i] ?? 0;
    const name = strip(written.name);
    const address = strip(written.address);
    const phone = strip(written.phone);
    out.rows.push({ row, line, name, address, phone: phone === '' ? null : phone });
    for (const column of COLUMNS) {
      const v = strip(written[column]);
      if (v === '' && column !== 'phone') {
        out.problems.push({ row, line, column, message: new RegExp(`^Line ${line}\\b.*\\b${column}\\b.*\\brequired\\b`) });
      } else if (v.length > MAX) {
        out.problems.push({ row, line, column, message: new RegExp(`^Line ${line}\\b.*\\b${column}\\b.*\\b${v.length}\\b.*\\b${MAX}\\b`) });
      }
    }
    // The next record starts on the line after this one's last, which may be several lines down.
    line += 1 + COLUMNS.reduce((sum, column) => sum + lineBreaks(written[column]), 0);
  });
  return out;
}

/** Runs `fn`; a thrown AppError is returned, anything else thrown fails the property. */
async function outcome<T>(fn: () => Promise<T>): Promise<{ ok: T } | { error: AppError }> {
  try {
    return { ok: await fn() };
  } catch (error) {
    if (error instanceof AppError) return { error };
    throw new Error(`threw a non-AppError: ${String(error)}`, { cause: error });
  }
}

const matchProblems = (problems: Expected['problems']) =>
  problems.map((p) => ({ row: p.row, line: p.line, column: p.column, message: expect.stringMatching(p.message) }));

const limits = { maxRows: 20 };

// ---------------------------------------------------------------------------------------------

describe('readHospitalsCsv / inspectHospitalsCsv: properties', () => {
  test('when any table of 1–20 rows is written as CSV in any style, then it reads back exactly, or is refused naming the row, line and column of each bad value', async () => {
    await fc.assert(
      fc.asyncProperty(table, style, async (rows, s) => {
        const bytes = writeCsv(rows, s);
        const want = expected(rows, s);

        // inspect: every row as read (valid or not) and every problem, uncapped.
        const inspected = await outcome(() => inspectHospitalsCsv(bytes, limits));
        expect(inspected).toEqual({ ok: { rows: want.rows, problems: matchProblems(want.problems), problemCount: want.problems.length } });

        const read = await outcome(() => readHospitalsCsv(bytes, limits));
        if (want.problems.length === 0) {
          // Valid iff every name and address is non-blank after trim and every value is ≤ 255 after trim.
          expect(read).toEqual({ ok: want.rows });
          return;
        }
        expect('error' in read).toBe(true);
        if (!('error' in read)) return;
        const { error } = read;
        expect(error.code).toBe('invalid_csv');
        expect(error.status).toBe(400);
        const n = want.problems.length;
        expect(error.message).toMatch(new RegExp(`^The CSV has ${n} problems?\\b`));
        // Every row problem is listed at once, however many (a row has at most four).
        expect(error.extra['errors']).toEqual(matchProblems(want.problems));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test('when a NUL is anywhere inside any value of an otherwise writable table, then the whole file is refused as binary (415)', async () => {
    await fc.assert(
      fc.asyncProperty(table, style, fc.nat(), fc.nat(), fc.constantFrom(...COLUMNS), async (rows, s, rowPick, at, column) => {
        const poisoned = rows.map((row) => ({ ...row }));
        const target = poisoned[rowPick % poisoned.length]!;
        const v = target[column];
        const cut = at % (v.length + 1);
        target[column] = `${v.slice(0, cut)}\u0000${v.slice(cut)}`;
        const bytes = writeCsv(poisoned, s);

        const runs: (() => Promise<unknown>)[] = [() => readHospitalsCsv(bytes, limits), () => inspectHospitalsCsv(bytes, limits)];
        for (const run of runs) {
          const result = await outcome(run);
          expect('error' in result).toBe(true);
          if (!('error' in result)) return;
          expect(result.error.code).toBe('unsupported_media_type');
          expect(result.error.status).toBe(415);
          expect(result.error.message).toBe(BINARY);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  /** Text that is mostly CSV syntax and header words, so the parser's error paths are reached often. */
  const csvish = fc
    .tuple(
      fc.constantFrom('', 'name,address,phone\n', 'name,address\r\n', '\uFEFFname,address,phone\r\n', 'Name , "Address"\r'),
      fc.array(fc.constantFrom('name', 'address', 'phone', ',', ',', '"', '"', '""', '\r', '\n', '\r\n', ' ', '\t', 'A', 'é', '🏥', '\uFEFF', 'x'.repeat(300)), { maxLength: 60 }),
    )
    .map(([head, tokens]) => Buffer.from(head + tokens.join(''), 'utf8'));
  /** Random bytes spliced into text: broken UTF-8, stray NULs, BOM-looking starts. */
  const spliced = fc
    .tuple(csvish, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 4 }))
    .map(([text, at, junk]) => {
      const cut = at % (text.length + 1);
      return Buffer.concat([text.subarray(0, cut), junk, text.subarray(cut)]);
    });
  /** A well-written file, then a few edits: a token inserted, a span deleted, a byte overwritten. */
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.constantFrom(',', '"', '\n', '\r', '\r\n', ' ', '""', 'x', '\uFEFF') }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 5 }) }),
    fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  );
  const edited = fc.tuple(table, style, fc.array(edit, { maxLength: 2 })).map(([rows, s, edits]) =>
    edits.reduce((bytes, e) => {
      const at = e.at % (bytes.length + 1);
      if (e.kind === 'insert') return Buffer.concat([bytes.subarray(0, at), Buffer.from(e.text, 'utf8'), bytes.subarray(at)]);
      if (e.kind === 'delete') return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + e.length)]);
      const copy = Buffer.from(bytes);
      if (at < copy.length) copy[at] = e.byte;
      return copy;
    }, writeCsv(rows, s)),
  );
  const anyBytes = fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u)) },
    { weight: 3, arbitrary: csvish },
    { weight: 1, arbitrary: spliced },
    { weight: 5, arbitrary: edited },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.concat([Buffer.from([0xff, 0xfe]), u])) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), u])) },
  );

  test('when the bytes are anything at all, then the result is valid rows, a 415 exactly when they are not text in an encoding we read, or a 400 listing problems — never anything else', async () => {
    await fc.assert(
      fc.asyncProperty(anyBytes, fc.integer({ min: 1, max: 20 }), async (bytes, maxRows) => {
        const zip = bytes.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1'));
        const notText = !zip && notReadableText(bytes);
        const read = await outcome(() => readHospitalsCsv(bytes, { maxRows }));
        const inspected = await outcome(() => inspectHospitalsCsv(bytes, { maxRows }));

        if (zip) {
          // Read as a workbook: these are never one, and the answer is a clean refusal.
          for (const result of [read, inspected]) {
            expect('error' in result && [400, 413, 415].includes(result.error.status)).toBe(true);
          }
          return;
        }
        if (notText) {
          for (const result of [read, inspected]) {
            expect('error' in result && result.error.code === 'unsupported_media_type' && result.error.status === 415).toBe(true);
          }
          return;
        }
        // inspect only refuses bytes that are not text.
        expect('ok' in inspected).toBe(true);
        if (!('ok' in inspected)) return;
        const { problems } = inspected.ok;

        if ('ok' in read) {
          expect(problems).toEqual([]);
          const rows = read.ok;
          expect(rows.length).toBeGreaterThanOrEqual(1);
          expect(rows.length).toBeLessThanOrEqual(maxRows);
          rows.forEach((r, i) => {
            expect(r.row).toBe(i + 1);
            expect(r.line).toBeGreaterThan(i === 0 ? 1 : rows[i - 1]!.line);
            for (const v of [r.name, r.address]) {
              expect(v).not.toBe('');
              expect(v).toBe(strip(v));
              expect(v.length).toBeLessThanOrEqual(MAX);
            }
            if (r.phone !== null) {
              expect(r.phone).not.toBe('');
              expect(r.phone).toBe(strip(r.phone));
              expect(r.phone.length).toBeLessThanOrEqual(MAX);
            }
          });
          return;
        }
        const { error } = read;
        expect(error.code).toBe('invalid_csv');
        expect(error.status).toBe(400);
        expect(problems.length).toBeGreaterThan(0);
        const listed = error.extra['errors'] as CsvProblem[];
        expect(listed.length).toBeGreaterThan(0);
        // At most 50 about the file or its header, four per row read, and a count of the rest.
        expect(listed.length).toBeLessThanOrEqual(50 + 4 * maxRows + 1);
        expect(listed.slice(0, problems.length)).toEqual(problems);
        for (const p of listed) {
          expect(p.row === null || (Number.isInteger(p.row) && p.row >= 1)).toBe(true);
          expect(p.line === null || (Number.isInteger(p.line) && p.line >= 1)).toBe(true);
          expect(p.column === null || typeof p.column === 'string').toBe(true);
          expect(typeof p.message).toBe('string');
          expect(p.message.length).toBeGreaterThan(0);
          // Whatever the file holds, a message echoes at most a short prefix of it.
          expect(p.message.length).toBeLessThan(200);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
