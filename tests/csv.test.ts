import type { CsvLimits } from '../src/bulk/csv.js';
import { inspectUpload, readUpload } from '../src/bulk/read.js';
import { AppError } from '../src/errors.js';
import type { CsvProblem } from '../src/errors.js';

const limits: CsvLimits = { maxRows: 20 };
const readHospitalsCsv = async (bytes: Buffer, l: CsvLimits) => (await readUpload(bytes, l)).rows;
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

describe('readHospitalsCsv: encodings', () => {
  const expected = [{ row: 1, line: 2, name: 'Hôpital Saint-Éloi', address: 'Rue 1', phone: null }];

  test('when the file has a UTF-16 LE BOM (Excel\'s "Unicode Text"), then it is read as UTF-16', async () => {
    const bytes = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('name,address\nHôpital Saint-Éloi,Rue 1\n', 'utf16le')]);
    expect(await readHospitalsCsv(bytes, limits)).toEqual(expected);
    expect((await inspectUpload(bytes, limits)).format).toMatchObject({ type: 'csv', encoding: 'utf-16le', delimiter: ',' });
  });

  test('when the file has a UTF-16 BE BOM, then it is read as UTF-16 big-endian', async () => {
    const le = Buffer.from('name,address\nHôpital Saint-Éloi,Rue 1\n', 'utf16le');
    const bytes = Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(le).swap16()]);
    expect(await readHospitalsCsv(bytes, limits)).toEqual(expected);
    expect((await inspectUpload(bytes, limits)).format.encoding).toBe('utf-16be');
  });

  test('when the file is not UTF-8 but every byte is Windows-1252, then it is read as Windows-1252 with a notice', async () => {
    // 0x80 is €, 0x92 is ’ in Windows-1252 (not in Latin-1).
    const bytes = Buffer.concat([Buffer.from('name,address\nH\xf4pital Saint-\xc9loi,Rue 1 ', 'latin1'), Buffer.from([0x80, 0x92]), Buffer.from('\n')]);
    const read = await readUpload(bytes, limits);
    expect(read.rows).toEqual([{ ...expected[0], address: 'Rue 1 €’' }]);
    expect(read.format.encoding).toBe('windows-1252');
    expect(read.notices).toEqual([expect.stringMatching(/read as Windows-1252/)]);
  });

  test('when Windows-1252 bytes are also valid UTF-8, then the file is read as UTF-8, without a notice', async () => {
    // "Ø’" in Windows-1252 is D8 92, which UTF-8 reads as one character, U+0612. A reader
    // cannot tell the two apart; the rule is "UTF-8 if it is valid UTF-8, else Windows-1252".
    const bytes = Buffer.concat([Buffer.from('name,address\nA,', 'latin1'), Buffer.from([0xd8, 0x92]), Buffer.from('\n')]);
    const read = await readUpload(bytes, limits);
    expect(read.rows).toEqual([{ row: 1, line: 2, name: 'A', address: '\u0612', phone: null }]);
    expect(read.format.encoding).toBe('utf-8');
    expect(read.notices).toEqual([]);
  });

  test('when the file is UTF-8, then no notice is given', async () => {
    expect(await inspectUpload(utf8('name,address\nA,B\n'), limits)).toMatchObject({ notices: [], format: { encoding: 'utf-8' } });
  });

  test('when a byte is neither UTF-8 nor Windows-1252 (0x81), then 415 names the encodings we read', async () => {
    const err = await unsupported(Buffer.from('name,address\nA\x81,B\n', 'latin1'));
    expect(err.message).toBe(
      'The file is not text we can read (it has bytes that are neither UTF-8 nor Windows-1252); we read UTF-8, UTF-16 with a byte order mark (Excel\'s "Unicode Text"), or Windows-1252. Save it from Excel as "CSV UTF-8" or as an Excel workbook (.xlsx) and upload it again.',
    );
  });

  test('when UTF-16 text is broken (a lone surrogate), then 415', async () => {
    const err = await unsupported(Buffer.from([0xff, 0xfe, 0x6e, 0x00, 0x00, 0xd8, 0x2c, 0x00]));
    expect(err.message).toMatch(/not valid UTF-16/);
  });

  test('when the file contains a NUL byte, then it is refused as binary', async () => {
    const err = await unsupported(Buffer.from('name,address\nA\x00,B\n', 'latin1'));
    expect(err.message).toMatch(/^The file is not text we can read \(it looks like a binary file\)/);
  });
});

describe('readHospitalsCsv: delimiters and column names', () => {
  test.each([
    ['a semicolon', ';', 'name;address;phone\n"A;1";"B, 2";3\n'],
    ['a tab', '\t', 'name\taddress\tphone\n"A;1"\tB, 2\t3\n'],
    ['a comma', ',', 'name,address,phone\n"A;1","B, 2",3\n'],
  ])('when the header is split by %s, then that delimiter is used for every line', async (_label, delimiter, text) => {
    const read = await readUpload(utf8(text), limits);
    expect(read.rows).toEqual([{ row: 1, line: 2, name: 'A;1', address: 'B, 2', phone: '3' }]);
    expect(read.format.delimiter).toBe(delimiter);
  });

  test('when a quoted header name holds the other delimiter, then the quotes are respected', async () => {
    expect((await inspectUpload(utf8('"name,x";address;phone\nA;B;C\n'), limits)).format.delimiter).toBe(';');
    expect((await inspectUpload(utf8('"a,b,c";address\n'), limits)).format.delimiter).toBe(';');
  });

  test('when headers use familiar names in any case, spacing and punctuation, then they map to the fields', async () => {
    const read = await readUpload(utf8('Hospital Name,STREET_ADDRESS,Phone No.\nA,B,1\n'), limits);
    expect(read.rows).toEqual([{ row: 1, line: 2, name: 'A', address: 'B', phone: '1' }]);
    expect(read.format.columns).toEqual([
      { header: 'Hospital Name', field: 'name' },
      { header: 'STREET_ADDRESS', field: 'address' },
      { header: 'Phone No.', field: 'phone' },
    ]);
  });

  test.each([
    ['facility', 'location', 'tel'],
    ['Facility Name', 'Street', 'Telephone'],
    ['hospital', 'street-address', 'contact number'],
  ])('when the headers are %s, %s, %s, then they are name, address, phone', async (...headers) => {
    expect((await readUpload(utf8(`${headers.join(',')}\nA,B,1\n`), limits)).rows).toEqual([{ row: 1, line: 2, name: 'A', address: 'B', phone: '1' }]);
  });

  test('when two columns map to one field, then 400 names both', async () => {
    expect(await problems('Hospital Name,address,Facility\nA,B,C\n')).toEqual([
      { row: null, line: 1, column: 'name', message: 'Columns "Hospital Name" and "Facility" both mean name; keep one of them' },
    ]);
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
      { row: null, line: null, column: null, message: 'The file has more than 20 data rows; at most 20 are allowed per upload: split the file, or ask an operator to raise MAX_ROWS (up to 1000)' },
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
    // 50 about the header, the data row's own problem, and the count of the rest.
    expect(errors).toHaveLength(52);
    expect(errors[0]).toEqual({
      row: null,
      line: 1,
      column: 'x1',
      message: 'Unknown column "x1"; allowed columns are name, address, phone',
    });
    expect(errors[49]?.column).toBe('x50');
    expect(errors[50]).toMatchObject({ row: 1, line: 2 });
    expect(errors[51]).toEqual({ row: null, line: null, column: null, message: '…and 9947 more problems' });
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
