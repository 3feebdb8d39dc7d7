/**
 * Hostile and broken uploads, over HTTP against the real app: each is refused with the
 * exact status and a message that names the problem, before anything reaches the directory
 * or the history; or, when it is harmless, accepted and stored exactly as written.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import request from 'supertest';
import { startStack, type Stack } from './helpers.js';

const HEADER = 'name,address,phone';
const DEFAULT_MAX_BYTES = 1_048_576;
const TOO_LARGE = `The file is larger than the ${DEFAULT_MAX_BYTES} bytes allowed per upload.`;
const BINARY =
  'The file is not text we can read (it looks like a binary file); we read UTF-8, UTF-16 with a byte order mark (Excel\'s "Unicode Text"), or Windows-1252. Save it from Excel as "CSV UTF-8" or as an Excel workbook (.xlsx) and upload it again.';

let stack: Stack;
afterEach(async () => stack?.close());

const upload = (content: string | Buffer, filename = 'hospitals.csv') =>
  request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(content), filename);

/**
 * A multipart body written by hand: supertest's form-data client reduces a filename to its
 * base name before sending, and a hostile client does not. `disposition` is the raw tail of
 * the part's Content-Disposition after `name="file"`.
 */
function rawUpload(disposition: string, content: string | Buffer) {
  const boundary = 'hostile-boundary-7d1c';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; ${disposition}\r\nContent-Type: text/csv\r\n\r\n`, 'latin1'),
    Buffer.from(content),
    Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1'),
  ]);
  return request(stack.app).post('/hospitals/bulk').set('Content-Type', `multipart/form-data; boundary=${boundary}`).send(body);
}

/** `filename="…"` as an RFC 9110 quoted-string: backslash and quote escaped. */
const quotedFilename = (name: string) => `filename="${name.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
/** RFC 8187 `filename*`, so bytes that cannot go raw into a header (CR, LF, ESC) still reach the server. */
const extendedFilename = (name: string) =>
  `filename*=UTF-8''${encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;

/** After a refused upload: the directory saw nothing and the history holds nothing. */
async function expectNothingHappened() {
  expect(stack.sim.requests).toEqual([]);
  const history = await request(stack.app).get('/batches');
  expect(history.status).toBe(200);
  expect(history.body).toEqual({ batches: [], next_cursor: null });
}

/** A refusal is problem JSON with its status, and carries no internals (stack frames, paths, library errors). */
function expectCleanProblem(res: request.Response, status: number) {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, type: expect.stringMatching(/^urn:hospital-bulk:problem:/) });
  expect(res.text).not.toMatch(/node_modules|\/work\/|\bat \S+ \(|\.ts:\d+|CsvError|TypeError|RangeError|Invalid Opening Quote/);
}

/** Raw bytes of a response, whatever its type (for byte-exact comparisons). */
function binary(response: request.Response, callback: (err: Error | null, body: Buffer) => void) {
  // superagent hands a parser the node response stream, whatever its types say.
  const res = response as unknown as http.IncomingMessage;
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  res.on('end', () => callback(null, Buffer.concat(chunks)));
  res.on('error', (err) => callback(err, Buffer.alloc(0)));
}

async function listen(app: Stack['app']): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(app).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

async function stop(server: http.Server) {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

interface RawAnswer {
  status: number;
  contentType: string;
  body: string;
  elapsedMs: number;
  bytesSent: number;
}

/**
 * POSTs to /hospitals/bulk with node:http: `write` is called until it returns false for
 * "no more"; the request is destroyed as soon as the whole answer has arrived.
 */
function rawPost(port: number, headers: Record<string, string>, write: (req: http.ClientRequest) => Promise<void>): Promise<RawAnswer> {
  const started = Date.now();
  let bytesSent = 0;
  return new Promise<RawAnswer>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/hospitals/bulk', headers });
    const originalWrite = req.write.bind(req) as (chunk: string | Buffer) => boolean;
    req.write = ((chunk: string | Buffer) => {
      bytesSent += Buffer.byteLength(chunk);
      return originalWrite(chunk);
    }) as typeof req.write;
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type'] ?? ''),
          body: Buffer.concat(chunks).toString('utf8'),
          elapsedMs: Date.now() - started,
          bytesSent,
        });
        req.destroy();
      });
    });
    // Once the answer is in, a reset of the rest of the upload is expected.
    req.on('error', (err) => reject(err));
    write(req).catch(reject);
  });
}

async function health(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/health`);
  await res.arrayBuffer();
  return res.status;
}

describe('when a hostile client sends an enormous body', () => {
  const FIFTY_MB = 50 * 1024 * 1024;

  beforeEach(async () => {
    stack = await startStack(); // MAX_UPLOAD_BYTES at its default, 1 MiB
  });

  test('when 50 MB are announced in Content-Length and only a few bytes follow, then 413 names the limit at once and the server keeps serving', async () => {
    const { server, port } = await listen(stack.app);
    try {
      const answer = await rawPost(
        port,
        { 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(FIFTY_MB) },
        async (req) => {
          req.write('--x\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\nname,'); // …and nothing more
        },
      );

      expect(answer.status).toBe(413);
      expect(answer.contentType).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(answer.body)).toMatchObject({ status: 413, detail: TOO_LARGE });
      // Answered without waiting for the 50 MB that never come.
      expect(answer.elapsedMs).toBeLessThan(3000);
      expect(await health(port)).toBe(200);
    } finally {
      await stop(server);
    }
    await expectNothingHappened();
  });

  test('when 50 MB are really streamed with chunked transfer encoding (no Content-Length), then 413 names the limit and the server keeps serving', async () => {
    const { server, port } = await listen(stack.app);
    try {
      const chunk = Buffer.from('Hospital,1 Main St,555\n'.repeat(2850).slice(0, 64 * 1024));
      const answer = await rawPost(
        port,
        { 'content-type': 'multipart/form-data; boundary=x', 'transfer-encoding': 'chunked' },
        async (req) => {
          let answered = false;
          req.once('response', () => {
            answered = true;
          });
          req.write(`--x\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\nContent-Type: text/csv\r\n\r\n${HEADER}\n`);
          for (let sent = 0; sent < FIFTY_MB && !answered && !req.destroyed; sent += chunk.length) {
            if (!req.write(chunk)) await new Promise((resolve) => req.once('drain', resolve));
          }
          if (!answered && !req.destroyed) req.end('\r\n--x--\r\n');
        },
      );

      expect(answer.status).toBe(413);
      expect(JSON.parse(answer.body)).toMatchObject({ status: 413, detail: TOO_LARGE });
      // The body really went over the wire, in chunks, far past the limit.
      expect(answer.bytesSent).toBeGreaterThan(10 * DEFAULT_MAX_BYTES);
      expect(await health(port)).toBe(200);
    } finally {
      await stop(server);
    }
    await expectNothingHappened();
  }, 60_000);
});

describe('when the file is not text we can read', () => {
  beforeEach(async () => {
    stack = await startStack();
  });

  test('when a zip is cut short (a broken workbook renamed .csv), then 400 says the workbook cannot be read', async () => {
    const localFileHeader = Buffer.from([
      0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x06, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00, 0x62, 0xee, 0x9d, 0x68, 0x5e, 0x01, 0x00, 0x00,
      0x90, 0x04, 0x00, 0x00, 0x13, 0x00, 0x08, 0x02,
    ]);
    const deflated = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 131 + 7) % 256));
    const zip = Buffer.concat([localFileHeader, Buffer.from('[Content_Types].xml', 'latin1'), deflated]);

    const res = await upload(zip, 'hospitals.csv');

    expectCleanProblem(res, 400);
    expect(res.body.detail).toBe(
      'The workbook cannot be read: it has no table of contents (the file may be cut short). Open it in Excel, save it again as .xlsx, and upload that.',
    );
    await expectNothingHappened();
  });

  test('when a byte is neither UTF-8 nor Windows-1252, then 415 names the encodings we read', async () => {
    const content = Buffer.from(`${HEADER}\nCaf\u00e9 Clinic,1 Rue \u0081,555\n`, 'latin1');

    const res = await upload(content);

    expectCleanProblem(res, 415);
    expect(res.body.detail).toMatch(/^The file is not text we can read \(it has bytes that are neither UTF-8 nor Windows-1252\); we read UTF-8, UTF-16/);
    await expectNothingHappened();
  });

  test('when an otherwise valid file holds one NUL byte, then 415 says it looks like a binary file', async () => {
    const res = await upload(Buffer.from(`${HEADER}\nSt Mary,1 Main\u0000 St,555\nGeneral,2 High St,\n`, 'utf8'));

    expectCleanProblem(res, 415);
    expect(res.body.detail).toBe(BINARY);
    await expectNothingHappened();
  });
});

describe('when the CSV is built to make the answer huge or the parser choke', () => {
  beforeEach(async () => {
    stack = await startStack();
  });

  test('when the header has 10,000 long column names, then 400 lists at most 50 of them plus the row problems and a count, in a small answer', async () => {
    const extra = Array.from({ length: 9997 }, (_, i) => `${'column-'.repeat(8)}${i}`);
    const content = `${HEADER},${extra.join(',')}\nSt Mary,1 Main St,555\n`;
    expect(content.length).toBeGreaterThan(500_000);

    const res = await upload(content);

    expectCleanProblem(res, 400);
    // 9,997 unknown columns and the data row's field count.
    expect(res.body.detail).toBe('The CSV has 9998 problems; nothing was created.');
    // 50 about the header, the one row's field count, and the count of the rest.
    expect(res.body.errors).toHaveLength(52);
    expect(res.body.errors[0]).toEqual({
      row: null,
      line: 1,
      column: `${'column-'.repeat(8)}`.slice(0, 40) + '…',
      message: `Unknown column "${'column-'.repeat(8).slice(0, 40)}…"; allowed columns are name, address, phone`,
    });
    expect(res.body.errors.at(-1)).toEqual({ row: null, line: null, column: null, message: '…and 9947 more problems' });
    expect(Buffer.byteLength(res.text)).toBeLessThan(20_000);
    await expectNothingHappened();
  });

  test('when one field is 1,000,000 characters (the file still under 1 MiB), then 400 names the column and the 255 limit without echoing the value', async () => {
    const huge = 'Hospital-'.repeat(111_112).slice(0, 1_000_000);
    const content = `${HEADER}\n"${huge}",1 Main St,555\n`;
    expect(Buffer.byteLength(content)).toBeLessThan(DEFAULT_MAX_BYTES);

    const res = await upload(content);

    expectCleanProblem(res, 400);
    expect(res.body.detail).toBe('The CSV has 1 problem; nothing was created.');
    expect(res.body.errors).toEqual([
      { row: 1, line: 2, column: 'name', message: 'Line 2: name is 1000000 characters long; at most 255 characters are allowed' },
    ]);
    expect(res.text).not.toContain('Hospital-Hospital');
    expect(Buffer.byteLength(res.text)).toBeLessThan(5_000);
    await expectNothingHappened();
  });

  test('when a quote is opened and never closed, then 400 names the line where it opened (not where its record or the file starts or ends)', async () => {
    // Row 2 starts on line 3 with a two-line quoted name; the stray quote opens on line 4.
    const res = await upload(`${HEADER}\nSt Mary,1 Main St,555\n"General\nHospital",2 High St,"556\nClinic,3 Oak Ave,557\nLast,4 Elm St,558\n`);

    expectCleanProblem(res, 400);
    expect(res.body.detail).toBe('The CSV has 1 problem; nothing was created.');
    expect(res.body.errors).toEqual([
      { row: 2, line: 4, column: null, message: 'Line 4: a quoted value is never closed (check for a stray " character)' },
    ]);
    await expectNothingHappened();
  });

  test('when a BOM and CRLF header is followed only by blank lines, then 400 says there are no data rows', async () => {
    const res = await upload(`\uFEFF${HEADER}\r\n\r\n  \r\n`);

    expectCleanProblem(res, 400);
    expect(res.body.detail).toBe('The CSV has 1 problem; nothing was created.');
    expect(res.body.errors).toEqual([{ row: null, line: null, column: null, message: 'The file has a header but no data rows' }]);
    await expectNothingHappened();
  });
});

describe('when values look like spreadsheet formulas', () => {
  test('when name, address and phone start with = @ +, then they are created and reported exactly as written, and neutralised only in results.csv', async () => {
    stack = await startStack();
    const name = '=HYPERLINK("http://evil","x")';
    const address = '@SUM(A1)';
    const phone = '+1 555';

    const res = await upload(`${HEADER}\n"=HYPERLINK(""http://evil"",""x"")",@SUM(A1),+1 555\n`);

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'completed', batch_activated: true, hospitals: [{ row: 1, name, address, phone, status: 'created_and_activated' }] });
    const id = res.body.batch_id as string;
    const hospitalId = res.body.hospitals[0].hospital_id as number;
    expect(stack.sim.hospitals()).toEqual([expect.objectContaining({ id: hospitalId, name, address, phone, creation_batch_id: id, active: true })]);

    const stored = await request(stack.app).get(`/batches/${id}`);
    expect(stored.status).toBe(200);
    expect(stored.headers['content-type']).toMatch(/^application\/json/);
    expect(stored.body.hospitals).toEqual([expect.objectContaining({ name, address, phone })]);

    const download = await request(stack.app).get(`/batches/${id}/results.csv`).buffer(true).parse(binary);
    expect(download.status).toBe(200);
    expect(download.headers['content-type']).toMatch(/^text\/csv/);
    expect((download.body as Buffer).toString('utf8')).toBe(
      '\uFEFFrow,name,address,phone,hospital_id,status,error_message\r\n' +
        `1,"'=HYPERLINK(""http://evil"",""x"")",'@SUM(A1),'+1 555,${hospitalId},created_and_activated,\r\n`,
    );
  });
});

describe('when the filename is path-like or holds control characters', () => {
  const cwd = process.cwd();
  /** What the stack's private temp dir holds besides the SQLite database and its -wal/-shm files. */
  const dbDirExtras = () => readdirSync(dirname(stack.config.DATABASE_PATH)).filter((entry) => !entry.startsWith(basename(stack.config.DATABASE_PATH)));
  /** Whether each place a path-like name could resolve to exists. */
  const probe = () =>
    Object.fromEntries(
      [cwd, tmpdir(), dirname(stack.config.DATABASE_PATH)]
        .flatMap((base) => ['passwd', 'etc/passwd', 'windows', 'system32', 'x.csv', 'abs', 'h.csv', 'evil[2Jname.csv', 'upload.csv'].map((p) => join(base, p)))
        .concat(['/abs/path/h.csv'])
        .map((path) => [path, existsSync(path)]),
    );

  test.each([
    ['a relative path up to /etc', quotedFilename('../../etc/passwd'), 'passwd'],
    ['a Windows path with backslashes', quotedFilename('..\\..\\windows\\system32\\x.csv'), 'x.csv'],
    ['an absolute path', quotedFilename('/abs/path/h.csv'), 'h.csv'],
    ['control characters (BEL, ESC, CR, LF, DEL)', extendedFilename('ev\u0007il\u001b[2J\r\nname\u007f.csv'), 'evil[2Jname.csv'],
    ['nothing but control characters', extendedFilename('\u0001\u0002\t\u007f'), 'upload.csv'],
  ])('when the filename is %s, then the upload is accepted, only the base name is stored and no file is written', async (_label, disposition, expected) => {
    stack = await startStack();
    const passwdBefore = statSync('/etc/passwd', { throwIfNoEntry: false });
    const probedBefore = probe();

    const res = await rawUpload(disposition, `${HEADER}\nSt Mary,1 Main St,555\n`);

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'completed', filename: expected });
    const id = res.body.batch_id as string;
    expect((await request(stack.app).get(`/batches/${id}`)).body.filename).toBe(expected);
    expect((await request(stack.app).get('/batches')).body.batches).toEqual([expect.objectContaining({ batch_id: id, filename: expected })]);
    const download = await request(stack.app).get(`/batches/${id}/results.csv`);
    expect(download.status).toBe(200);
    const resultsName = `${expected.replace(/\.csv$/, '')}-results.csv`;
    expect(download.headers['content-disposition']).toBe(
      `attachment; filename="${resultsName}"; filename*=UTF-8''${encodeURIComponent(resultsName)}`,
    );

    // Nothing was written under the name, relative to the working directory, the temp dir or the database's dir.
    expect(dbDirExtras()).toEqual([]);
    expect(probe()).toEqual(probedBefore);
    expect(statSync('/etc/passwd', { throwIfNoEntry: false })?.mtimeMs).toBe(passwdBefore?.mtimeMs);
  });
});

describe('when names are in any script', () => {
  const rows = [
    { name: 'Hôpital Saint-Éloi', address: '12 Rue de l’Église, Paris', phone: '01 23 45 67 89' },
    { name: '北京协和医院', address: '北京市东城区帅府园1号', phone: '010-6915-6114' },
    { name: 'Clinic 🏥', address: 'Emoji Road 👩‍⚕️ 7', phone: null },
    // "e" followed by U+0301 COMBINING ACUTE ACCENT: must not come back as the precomposed "é".
    { name: 'Cafe\u0301 Clinic', address: 'Zo\u0308e Street 3', phone: '555' },
    { name: 'مستشفى الملك فيصل', address: 'שדרות הרצל 12', phone: '٠١٢٣' },
  ];

  test('when names hold accents, CJK, emoji, combining marks and RTL text, then each is byte-equal upstream, in the answer, in the history and in results.csv', async () => {
    stack = await startStack();
    expect(rows[3]!.name.normalize('NFC')).not.toBe(rows[3]!.name);
    const csv = `${HEADER}\n${rows.map((r) => `"${r.name}","${r.address}",${r.phone ?? ''}`).join('\n')}\n`;
    const bytesOf = (values: unknown[]) => values.map((value) => (typeof value === 'string' ? Buffer.from(value, 'utf8').toString('hex') : value));
    const expected = rows.flatMap((r) => bytesOf([r.name, r.address, r.phone]));
    const pick = (list: { name: string; address: string; phone: string | null }[]) =>
      list.flatMap((h) => bytesOf([h.name, h.address, h.phone]));

    const res = await upload(csv, 'unicode.csv');

    expect(res.status).toBe(200);
    expect(res.body.status).toBe('completed');
    expect(pick(res.body.hospitals)).toEqual(expected);

    const upstream = stack.sim.hospitals().sort((a, b) => a.id - b.id);
    expect(pick(upstream)).toEqual(expected);

    const stored = await request(stack.app).get(`/batches/${res.body.batch_id}`);
    expect(pick(stored.body.hospitals)).toEqual(expected);

    const download = await request(stack.app).get(`/batches/${res.body.batch_id}/results.csv`).buffer(true).parse(binary);
    expect(download.status).toBe(200);
    const ids = res.body.hospitals.map((h: { hospital_id: number }) => h.hospital_id);
    const expectedCsv = [
      '\uFEFFrow,name,address,phone,hospital_id,status,error_message',
      ...rows.map((r, i) => [i + 1, r.name, /,/.test(r.address) ? `"${r.address}"` : r.address, r.phone ?? '', ids[i], 'created_and_activated', ''].join(',')),
      '',
    ].join('\r\n');
    expect((download.body as Buffer).equals(Buffer.from(expectedCsv, 'utf8'))).toBe(true);
  });
});
