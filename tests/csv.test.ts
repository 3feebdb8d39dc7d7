import { readHospitalsCsv } from '../src/bulk/csv.js';
import type { CsvLimits } from '../src/bulk/csv.js';
import { AppError } from '../src/errors.js';
import type { CsvProblem } from '../src/errors.js';

const limits: CsvLimits = { maxRows: 20 };
const utf8 = (text: string) => Buffer.from(text, 'utf8');
const read = (text: string, l: CsvLimits = limits) => readHospitalsCsv(utf8(text), l);

/** Runs the reader expecting an AppError and returns it. */
async function failure(run: () => Promise<unknown>): Promise<AppError> {
  try {
    await run();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected readHospitalsCsv to throw');
}

/** Expects an invalid_csv error and returns its problems. */
async function problems(text: string, l: CsvLimits = limits): Promise<CsvProblem[]> {
  const err = await failure(() => read(text, l));
  expect(err.code).toBe('invalid_csv');
  expect(err.status).toBe(400);
  return err.extra['errors'] as CsvProblem[];
}

async function unsupported(bytes: Buffer): Promise<AppError> {
  const err = await failure(() => readHospitalsCsv(bytes, limits));
  expect(err.code).toBe('unsupported_media_type');
  expect(err.status).toBe(415);
  return err;
}

describe('readHospitalsCsv: accepted files', () => {
  test('when the file is plain UTF-8 with LF endings, then it returns every row with its row and line', async () => {
    expect(await read('name,address,phone\nSt Mary,1 Main St,555-0100\nGeneral,2 High St,555-0101\n')).toEqual([
      { row: 1, line: 2, name: 'St Mary', address: '1 Main St', phone: '555-0100' },
      { row: 2, line: 3, name: 'General', address: '2 High St', phone: '555-0101' },
    ]);
  });

  test('when the file starts with a UTF-8 BOM, then the BOM is not part of the first header name', async () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8('name,address\nA,B\n')]);
    expect(await readHospitalsCsv(bytes, limits)).toEqual([{ row: 1, line: 2, name: 'A', address: 'B', phone: null }]);
  });

  test('when lines end with CRLF, then no carriage return leaks into values', async () => {
    expect(await read('name,address,phone\r\nA,B,1\r\nC,D,2\r\n')).toEqual([
      { row: 1, line: 2, name: 'A', address: 'B', phone: '1' },
      { row: 2, line: 3, name: 'C', address: 'D', phone: '2' },
    ]);
  });

  test.each([
    ['a CRLF header and LF rows', 'name,address,phone\r\nA,B,1\nC,D,2\n'],
    ['an LF header and CRLF rows', 'name,address,phone\nA,B,1\r\nC,D,2\r\n'],
    ['bare CR endings mixed in', 'name,address,phone\rA,B,1\r\nC,D,2'],
  ])('when the file mixes line endings (%s), then every line is its own row', async (_label, text) => {
    expect(await read(text)).toEqual([
      { row: 1, line: 2, name: 'A', address: 'B', phone: '1' },
      { row: 2, line: 3, name: 'C', address: 'D', phone: '2' },
    ]);
  });

  test('when quoted values hold commas and doubled quotes, then they are unquoted exactly', async () => {
    expect(await read('name,address\n"Smith, Jones & Co","The ""Old"" Wing, 3 Elm St"\n')).toEqual([
      { row: 1, line: 2, name: 'Smith, Jones & Co', address: 'The "Old" Wing, 3 Elm St', phone: null },
    ]);
  });

  test('when a quoted value spans lines, then its row keeps the line breaks and later rows report the line they start on', async () => {
    const text = [
      'name,address', // 1
      '', // 2
      'A,"Floor 2', // 3
      'Building C', // 4
      'Town"', // 5
      '   ', // 6
      'B,"x\r\ny"', // 7-8, CRLF inside quotes
      'C,z', // 9
    ].join('\n');
    expect(await read(text)).toEqual([
      { row: 1, line: 3, name: 'A', address: 'Floor 2\nBuilding C\nTown', phone: null },
      { row: 2, line: 7, name: 'B', address: 'x\r\ny', phone: null },
      { row: 3, line: 9, name: 'C', address: 'z', phone: null },
    ]);
  });

  test('when a CRLF file has a quoted multi-line value and blank lines, then start lines are still exact', async () => {
    const text = '\r\nname,address\r\n\r\n"A\r\nA2",B\r\n \t \r\nC,D\r\n';
    expect(await read(text)).toEqual([
      { row: 1, line: 4, name: 'A\r\nA2', address: 'B', phone: null },
      { row: 2, line: 7, name: 'C', address: 'D', phone: null },
    ]);
  });

  test('when blank and whitespace-only lines appear before, between and after rows, then they are skipped but counted', async () => {
    const text = '\n  \nname,address\n\nA,B\n \t\n\nC,D\n\n   \n';
    expect(await read(text)).toEqual([
      { row: 1, line: 5, name: 'A', address: 'B', phone: null },
      { row: 2, line: 8, name: 'C', address: 'D', phone: null },
    ]);
  });

  test('when values have surrounding whitespace, inside quotes or out, then it is trimmed and inner spacing kept', async () => {
    expect(await read('name,address,phone\n  St  Mary  , " 1 Main St\t" ,\t"  555 0100 "  \n')).toEqual([
      { row: 1, line: 2, name: 'St  Mary', address: '1 Main St', phone: '555 0100' },
    ]);
  });

  test('when header names differ in case, order and whitespace, then values are mapped by name', async () => {
    expect(await read(' Address ,NAME,  Phone\n1 Main St,St Mary,555\n')).toEqual([
      { row: 1, line: 2, name: 'St Mary', address: '1 Main St', phone: '555' },
    ]);
  });

  test('when the phone column is absent, then phone is null', async () => {
    expect(await read('name,address\nA,B\n')).toEqual([{ row: 1, line: 2, name: 'A', address: 'B', phone: null }]);
  });

  test('when a phone value is empty or blank, then phone is null', async () => {
    expect(await read('name,address,phone\nA,B,\nC,D,"  "\n')).toEqual([
      { row: 1, line: 2, name: 'A', address: 'B', phone: null },
      { row: 2, line: 3, name: 'C', address: 'D', phone: null },
    ]);
  });

  test('when a value is exactly maxFieldLength characters, then it is accepted', async () => {
    const name = 'n'.repeat(255);
    expect(await read(`name,address\n${name},B\n`)).toEqual([{ row: 1, line: 2, name, address: 'B', phone: null }]);
  });

  test('when the file has exactly maxRows rows, then all are returned', async () => {
    const body = Array.from({ length: 20 }, (_, i) => `H${i + 1},A${i + 1}`).join('\n');
    const rows = await read(`name,address\n${body}\n`);
    expect(rows).toHaveLength(20);
    expect(rows[19]).toEqual({ row: 20, line: 21, name: 'H20', address: 'A20', phone: null });
  });

  test('when values look like spreadsheet formulas, then they are returned untouched', async () => {
    expect(await read('name,address,phone\n"=HYPERLINK(""http://x"")",+1 Main St,-555\n@SUM(A1),=1+2,+44 20\n')).toEqual([
      { row: 1, line: 2, name: '=HYPERLINK("http://x")', address: '+1 Main St', phone: '-555' },
      { row: 2, line: 3, name: '@SUM(A1)', address: '=1+2', phone: '+44 20' },
    ]);
  });

  test('when values hold accents, CJK and emoji, then they round-trip exactly', async () => {
    expect(await read('name,address,phone\nHôpital Saint-Éloi,東京都千代田区 1-1,☎️ 555\nKlinik 🏥,Straße 5,\n')).toEqual([
      { row: 1, line: 2, name: 'Hôpital Saint-Éloi', address: '東京都千代田区 1-1', phone: '☎️ 555' },
      { row: 2, line: 3, name: 'Klinik 🏥', address: 'Straße 5', phone: null },
    ]);
  });
});

describe('readHospitalsCsv: files that are not UTF-8 text', () => {
  test('when the file has a UTF-16 LE BOM, then it is refused as UTF-16 and UTF-8 is asked for', async () => {
    const err = await unsupported(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('name,address\nA,B\n', 'utf16le')]));
    expect(err.message).toMatch(/UTF-16/);
    expect(err.message).toMatch(/save .*UTF-8/i);
  });

  test('when the file has a UTF-16 BE BOM, then it is refused as UTF-16 and UTF-8 is asked for', async () => {
    const le = Buffer.from('name,address\nA,B\n', 'utf16le');
    const err = await unsupported(Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(le).swap16()]));
    expect(err.message).toMatch(/UTF-16/);
    expect(err.message).toMatch(/save .*UTF-8/i);
  });

  test('when the file is Latin-1 with accented bytes, then it is refused naming UTF-8', async () => {
    const err = await unsupported(Buffer.from('name,address\nHôpital,Rue 1\n', 'latin1'));
    expect(err.message).toMatch(/not UTF-8 text/);
    expect(err.message).toMatch(/Latin-1/);
  });

  test('when the file contains a NUL byte, then it is refused as binary', async () => {
    const err = await unsupported(Buffer.from('name,address\nA\x00,B\n', 'latin1'));
    expect(err.message).toBe(
      'The file is not UTF-8 text (it looks like a binary file). Upload a CSV saved as UTF-8 (in Excel: "CSV UTF-8").',
    );
  });

  test('when the file is a zip (e.g. an .xlsx renamed .csv), then it is refused naming zip and UTF-8', async () => {
    const zipHeader = Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x06, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00]);
    const err = await unsupported(Buffer.concat([zipHeader, utf8('[Content_Types].xml')]));
    expect(err.message).toMatch(/zip file or an Excel workbook/);
    expect(err.message).toMatch(/UTF-8/);
  });
});

describe('readHospitalsCsv: invalid CSV', () => {
  test.each([
    ['no bytes at all', ''],
    ['only blank and whitespace-only lines', '\n\r\n  \n\t\n'],
    ['only a BOM', '\uFEFF'],
  ])('when the file holds %s, then it is reported as empty', async (_label, text) => {
    expect(await problems(text)).toEqual([
      {
        row: null,
        line: null,
        column: null,
        message: 'The file is empty: expected a header row name,address,phone and at least one data row',
      },
    ]);
  });

  test('when the file has a header but no data rows, then that is the one problem', async () => {
    expect(await problems('name,address,phone\n\n  \n')).toEqual([
      { row: null, line: null, column: null, message: 'The file has a header but no data rows' },
    ]);
  });

  test('when the header has an unknown column, then it is named with the allowed columns and the header line', async () => {
    expect(await problems('\nname,address,Email\nA,B,a@b.c\n')).toEqual([
      { row: null, line: 2, column: 'Email', message: 'Unknown column "Email"; allowed columns are name, address, phone' },
    ]);
  });

  test('when a column is repeated (in any case), then it is named', async () => {
    expect(await problems('name,address,Name\nA,B,C\n')).toEqual([
      { row: null, line: 1, column: 'name', message: 'Column "name" appears more than once in the header' },
    ]);
  });

  test('when a header cell is empty, then its position is named', async () => {
    expect(await problems('name,address,\nA,B,\n')).toEqual([
      { row: null, line: 1, column: null, message: 'Column 3 of the header has no name; allowed columns are name, address, phone' },
    ]);
  });

  test('when a required column is missing, then it is named', async () => {
    expect(await problems('name,phone\nA,555\n')).toEqual([
      { row: null, line: 1, column: 'address', message: 'Required column "address" is missing from the header' },
    ]);
  });

  test('when the first row is data rather than a header, then it fails the header checks', async () => {
    expect(await problems('St Mary,1 Main St\nGeneral,2 High St\n')).toEqual([
      { row: null, line: 1, column: 'St Mary', message: 'Unknown column "St Mary"; allowed columns are name, address, phone' },
      { row: null, line: 1, column: '1 Main St', message: 'Unknown column "1 Main St"; allowed columns are name, address, phone' },
      { row: null, line: 1, column: 'name', message: 'Required column "name" is missing from the header' },
      { row: null, line: 1, column: 'address', message: 'Required column "address" is missing from the header' },
    ]);
  });

  test('when a row has too many fields, then its line and both counts are named', async () => {
    expect(await problems('name,address,phone\nA,B,1\nC,D,2,extra\n')).toEqual([
      { row: 2, line: 3, column: null, message: 'Line 3 has 4 fields; the header has 3' },
    ]);
  });

  test('when a row has too few fields, then its line and both counts are named', async () => {
    expect(await problems('name,address,phone\n\nJust a name\n')).toEqual([
      { row: 1, line: 3, column: null, message: 'Line 3 has 1 field; the header has 3' },
    ]);
  });

  test('when a row has a blank name, then name is reported as required', async () => {
    expect(await problems('name,address\nA,B\n   ,C\n')).toEqual([
      { row: 2, line: 3, column: 'name', message: 'Line 3: name is required' },
    ]);
  });

  test('when a row has an empty or whitespace-only quoted address, then address is reported as required', async () => {
    expect(await problems('name,address\nA,\nB,"  "\n')).toEqual([
      { row: 1, line: 2, column: 'address', message: 'Line 2: address is required' },
      { row: 2, line: 3, column: 'address', message: 'Line 3: address is required' },
    ]);
  });

  test('when a value is one character over maxFieldLength, then the column and the limit are named', async () => {
    expect(await problems(`name,address,phone\nA,${'a'.repeat(256)},1\n`)).toEqual([
      { row: 1, line: 2, column: 'address', message: 'Line 2: address is 256 characters long; at most 255 characters are allowed' },
    ]);
  });

  test('when maxFieldLength is set, then it replaces the default limit', async () => {
    expect(await problems('name,address,phone\nA,B,123456\n', { maxRows: 20, maxFieldLength: 5 })).toEqual([
      { row: 1, line: 2, column: 'phone', message: 'Line 2: phone is 6 characters long; at most 5 characters are allowed' },
    ]);
  });

  test('when there are maxRows + 1 rows, then one file-level problem gives both counts and rows past the limit are not checked', async () => {
    const body = Array.from({ length: 20 }, (_, i) => `H${i},A${i}`).join('\n');
    const err = await failure(() => read(`name,address\n${body}\n,no name on row 21\n`));
    expect(err.message).toBe('The CSV has 1 problem; nothing was created.');
    expect(err.extra['errors']).toEqual([
      { row: null, line: null, column: null, message: 'The file has more than 20 data rows; at most 20 are allowed per upload' },
    ]);
  });

  test('when a quote is never closed, then the line where it opened is reported in plain words', async () => {
    expect(await problems('name,address\r\nA,B\r\n"Line, one\r\nline two",C\r\n\r\nD,"never closed\r\nE,F\r\nG,H\r\n')).toEqual([
      { row: 3, line: 6, column: null, message: 'Line 6: a quoted value is never closed (check for a stray " character)' },
    ]);
  });

  test('when a quote appears in the middle of an unquoted value, then the line is reported in plain words', async () => {
    const [problem, ...rest] = await problems('name,address\nA,B\nC,12" Main St\n');
    expect(rest).toEqual([]);
    expect(problem).toEqual({
      row: 2,
      line: 3,
      column: null,
      message: 'Line 3: a " character appears inside a value that is not quoted; put the whole value in quotes and double the " inside it ("")',
    });
    expect(problem?.message).not.toMatch(/Invalid Opening Quote/);
  });

  test('when text follows a closing quote, then the line is reported in plain words', async () => {
    expect(await problems('name,address\n"A" Hospital,B\n')).toEqual([
      {
        row: 1,
        line: 2,
        column: null,
        message: 'Line 2: a quoted value is followed by more text before the next comma; put the whole value in quotes and double any " inside it ("")',
      },
    ]);
  });

  test('when the header has 10,000 columns, then the unknown columns are reported, capped at 50 plus a count of the rest', async () => {
    const extra = Array.from({ length: 9997 }, (_, i) => `x${i + 1}`);
    const err = await failure(() => read(`name,address,phone,${extra.join(',')}\nA,B,C\n`));
    expect(err.code).toBe('invalid_csv');
    expect(err.message).toBe('The CSV has 9998 problems; nothing was created.');
    const errors = err.extra['errors'] as CsvProblem[];
    expect(errors).toHaveLength(51);
    expect(errors[0]).toEqual({
      row: null,
      line: 1,
      column: 'x1',
      message: 'Unknown column "x1"; allowed columns are name, address, phone',
    });
    expect(errors[49]?.column).toBe('x50');
    expect(errors[50]).toEqual({ row: null, line: null, column: null, message: '…and 9948 more problems' });
  });

  test('when a field is 1 MB, then the length error comes back without echoing the value', async () => {
    const huge = 'x'.repeat(1_000_000);
    const err = await failure(() => read(`name,address\n"${huge}",B\n`));
    expect(err.extra['errors']).toEqual([
      { row: 1, line: 2, column: 'name', message: 'Line 2: name is 1000000 characters long; at most 255 characters are allowed' },
    ]);
    expect(JSON.stringify(err.extra).length).toBeLessThan(500);
  });

  test('when a 1 MB unknown column name is in the header, then the message echoes only a short prefix', async () => {
    const [problem] = await problems(`name,address,${'y'.repeat(1_000_000)}\nA,B,C\n`);
    expect(problem).toEqual({
      row: null,
      line: 1,
      column: `${'y'.repeat(40)}…`,
      message: `Unknown column "${'y'.repeat(40)}…"; allowed columns are name, address, phone`,
    });
  });

  test('when a file has several problems, then all are reported together in file order with the count', async () => {
    const text = [
      'name,address,phone,email', // 1
      'A,B,1,a@b', // 2 ok
      ',,2,', // 3 blank name and address
      '', // 4
      '"C',
      'C2",D', // 5-6 too few fields
      `E,${'z'.repeat(300)},3,`, // 7 too long
    ].join('\r\n');
    const err = await failure(() => read(text));
    expect(err.message).toBe('The CSV has 5 problems; nothing was created.');
    expect(err.extra['errors']).toEqual([
      { row: null, line: 1, column: 'email', message: 'Unknown column "email"; allowed columns are name, address, phone' },
      { row: 2, line: 3, column: 'name', message: 'Line 3: name is required' },
      { row: 2, line: 3, column: 'address', message: 'Line 3: address is required' },
      { row: 3, line: 5, column: null, message: 'Line 5 has 2 fields; the header has 4' },
      { row: 4, line: 7, column: 'address', message: 'Line 7: address is 300 characters long; at most 255 characters are allowed' },
    ]);
  });
});
