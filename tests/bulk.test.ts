import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { closedPortUrl, requestsTo, startStack, type Stack } from './helpers.js';

const HEADER = 'name,address,phone';
const csv = (rows: number, header = HEADER) =>
  [header, ...Array.from({ length: rows }, (_, i) => `Hospital ${i + 1},"${i + 1} Main St, Springfield",555-01${String(i).padStart(2, '0')}`)].join('\n');

let stack: Stack;
afterEach(async () => stack?.close());

const upload = (content: string | Buffer, filename = 'hospitals.csv') =>
  request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(content), filename);

/** After a refused upload: the directory saw nothing and the history holds nothing. */
async function expectNothingHappened() {
  expect(stack.sim.requests).toEqual([]);
  const history = await request(stack.app).get('/batches');
  expect(history.body).toEqual({ batches: [], next_cursor: null });
}

describe('when the upload is refused before anything is sent', () => {
  beforeEach(async () => {
    stack = await startStack({ env: { MAX_UPLOAD_BYTES: '2000' } });
  });

  test('when no file is sent, then 400 says to send it in the field "file"', async () => {
    const res = await request(stack.app).post('/hospitals/bulk').field('note', 'hello');

    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 400, detail: 'No file received: send the CSV in the multipart field "file", with a file name (curl -F file=@hospitals.csv).' });
    await expectNothingHappened();
  });

  test('when the file is sent under another field name, then 400 names the field "file"', async () => {
    const res = await request(stack.app).post('/hospitals/bulk').attach('upload', Buffer.from(csv(1)), 'h.csv');

    expect(res.status).toBe(400);
    expect(res.body.detail).toBe('Send the CSV in the multipart field "file" (exactly one file).');
    await expectNothingHappened();
  });

  test('when two files are sent, then 400 asks for exactly one', async () => {
    const res = await request(stack.app)
      .post('/hospitals/bulk')
      .attach('file', Buffer.from(csv(1)), 'a.csv')
      .attach('file', Buffer.from(csv(1)), 'b.csv');

    expect(res.status).toBe(400);
    expect(res.body.detail).toMatch(/exactly one file/);
    await expectNothingHappened();
  });

  test('when the body is not multipart, then 415 explains how to send the file', async () => {
    const res = await request(stack.app).post('/hospitals/bulk').send({ name: 'x' });

    expect(res.status).toBe(415);
    expect(res.body.detail).toMatch(/multipart\/form-data in the field "file"/);
    await expectNothingHappened();
  });

  test('when the file is binary (a PNG image), then 415 says it is not text we can read', async () => {
    const res = await upload(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d]), 'hospitals.csv');

    expect(res.status).toBe(415);
    expect(res.body.detail).toMatch(/^The file is not text we can read \(it looks like a binary file\)/);
    await expectNothingHappened();
  });

  test('when the declared body is larger than MAX_UPLOAD_BYTES, then 413 comes back before the body is sent', async () => {
    const server = http.createServer(stack.app).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({
          port: (server.address() as AddressInfo).port,
          host: '127.0.0.1',
          method: 'POST',
          path: '/hospitals/bulk',
          headers: { 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(50 * 1024 * 1024) },
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
          req.destroy();
        });
        req.on('error', reject);
        req.write('--x\r\n'); // a few bytes of the announced 50 MB, and no more
      });

      expect(status).toBe(413);
    } finally {
      server.closeAllConnections();
      server.close();
    }
    await expectNothingHappened();
  });

  test('when a streamed file grows past MAX_UPLOAD_BYTES, then 413 names the limit', async () => {
    const big = `${HEADER}\n${'Hospital,Street,555\n'.repeat(200)}`;

    const res = await upload(big);

    expect(res.status).toBe(413);
    expect(res.body.detail).toBe('The file is larger than the 2000 bytes allowed per upload.');
    await expectNothingHappened();
  });

  test('when the CSV has several problems, then 400 lists each with row, line and column', async () => {
    const res = await upload('name,address,phone\nGood,1 Road,\n ,2 Road,\nThird,,555\n');

    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ status: 400, detail: 'The CSV has 2 problems; nothing was created.' });
    expect(res.body.errors).toEqual([
      { row: 2, line: 3, column: 'name', message: 'Line 3: name is required' },
      { row: 3, line: 4, column: 'address', message: 'Line 4: address is required' },
    ]);
    await expectNothingHappened();
  });

  test('when the header names an unknown column, then 400 names it and lists the allowed ones', async () => {
    const res = await upload('name,address,email\nA,B,c@d\n');

    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([
      { row: null, line: 1, column: 'email', message: 'Unknown column "email"; allowed columns are name, address, phone' },
    ]);
    await expectNothingHappened();
  });

  test('when the file has more rows than MAX_ROWS, then 400 says how many were found and the limit', async () => {
    const res = await upload(csv(21));

    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([
      { row: null, line: null, column: null, message: 'The file has more than 20 data rows; at most 20 are allowed per upload: split the file, or ask an operator to raise MAX_ROWS (up to 1000)' },
    ]);
    await expectNothingHappened();
  });

  test('when the file has a header only, then 400 says there are no data rows', async () => {
    const res = await upload(`${HEADER}\n`);

    expect(res.status).toBe(400);
    expect(res.body.errors[0].message).toBe('The file has a header but no data rows');
    await expectNothingHappened();
  });
});

describe('when the upload is processed', () => {
  test('when a single row is uploaded, then it is created and activated, and the history holds the same report', async () => {
    stack = await startStack();

    const res = await upload(csv(1), 'one.csv');

    expect(res.status).toBe(200);
    const report = res.body;
    expect(report).toMatchObject({
      status: 'completed',
      filename: 'one.csv',
      total_hospitals: 1,
      processed_hospitals: 1,
      failed_hospitals: 0,
      batch_activated: true,
      error: null,
      hospitals: [
        { row: 1, name: 'Hospital 1', address: '1 Main St, Springfield', phone: '555-0100', status: 'created_and_activated', error_message: null, attempts: 1 },
      ],
    });
    expect(report.batch_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(report.processing_time_seconds).toEqual(expect.any(Number));
    const upstream = stack.sim.hospitals();
    expect(upstream).toEqual([expect.objectContaining({ id: report.hospitals[0].hospital_id, creation_batch_id: report.batch_id, active: true })]);
    const stored = await request(stack.app).get(`/batches/${report.batch_id}`);
    expect(stored.status).toBe(200);
    expect(stored.body).toEqual(report);
  });

  test('when 20 rows are uploaded, then all 20 are created in file order and activated under the batch id', async () => {
    stack = await startStack();

    const res = await upload(csv(20));

    expect(res.body).toMatchObject({ status: 'completed', processed_hospitals: 20, batch_activated: true });
    expect(res.body.hospitals.map((h: { row: number }) => h.row)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(res.body.hospitals.every((h: { status: string }) => h.status === 'created_and_activated')).toBe(true);
    const creates = requestsTo(stack.sim, 'create').map((r) => (r.body as { name: string }).name);
    expect(creates).toEqual(Array.from({ length: 20 }, (_, i) => `Hospital ${i + 1}`));
    const upstream = stack.sim.hospitals();
    expect(upstream).toHaveLength(20);
    expect(upstream.every((h) => h.active && h.creation_batch_id === res.body.batch_id)).toBe(true);
    expect(upstream.map((h) => h.id).sort((a, b) => a - b)).toEqual(res.body.hospitals.map((h: { hospital_id: number }) => h.hospital_id));
  });

  test('when the directory refuses one row, then that row fails with its words, the others stay created and nothing is activated', async () => {
    stack = await startStack();
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'status', status: 400, body: { detail: 'Hospital refused for a test' } });

    const res = await upload(csv(3));

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'failed', processed_hospitals: 2, failed_hospitals: 1, batch_activated: false });
    expect(res.body.error).toBe('1 of 3 rows were not created; the batch was not activated.');
    expect(res.body.hospitals.map((h: { status: string }) => h.status)).toEqual(['created', 'failed', 'created']);
    expect(res.body.hospitals[1]).toMatchObject({
      hospital_id: null,
      error_message: 'Rejected by the directory (HTTP 400): Hospital refused for a test',
      attempts: 1,
    });
    expect(requestsTo(stack.sim, 'create')).toHaveLength(3);
    expect(requestsTo(stack.sim, 'activate')).toHaveLength(0);
    expect(stack.sim.hospitals().map((h) => h.active)).toEqual([false, false]);
  });

  test('when a create answer is lost after the directory stored it, then the report has that hospital and there is no duplicate', async () => {
    stack = await startStack();
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'lose-response' });

    const res = await upload(csv(3));

    expect(res.body).toMatchObject({ status: 'completed', processed_hospitals: 3, batch_activated: true });
    expect(stack.sim.hospitals()).toHaveLength(3);
    expect(new Set(res.body.hospitals.map((h: { hospital_id: number }) => h.hospital_id)).size).toBe(3);
    expect(requestsTo(stack.sim, 'create')).toHaveLength(3);
  });

  test('when the directory cannot be reached, then 503 carries the batch id and the history keeps the batch failed with rows pending', async () => {
    stack = await startStack({ env: { HOSPITAL_API_BASE_URL: await closedPortUrl(), WARMUP_TIMEOUT_MS: '200' } });

    const res = await upload(csv(2));

    expect(res.status).toBe(503);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body.detail).toMatch(/did not answer within 0 s.*Nothing more was created; the batch is kept and can be resumed with POST \/batches\/[0-9a-f-]{36}\/resume\.$/);
    const stored = await request(stack.app).get(`/batches/${res.body.batch_id}`);
    expect(stored.body).toMatchObject({ status: 'failed', processed_hospitals: 0, batch_activated: false });
    expect(stored.body.hospitals.map((h: { status: string }) => h.status)).toEqual(['pending', 'pending']);
  });

  test('when the directory is slow to wake, then the accepted rows are already in the history, pending', async () => {
    stack = await startStack({ sim: { coldStartMs: 300 } });

    const pending = upload(csv(2)).then((res) => res);
    let seen: { status: string; hospitals: { status: string }[] } | undefined;
    for (let i = 0; i < 50 && !seen; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      const list = await request(stack.app).get('/batches');
      const id = list.body.batches[0]?.batch_id as string | undefined;
      if (id) seen = (await request(stack.app).get(`/batches/${id}`)).body;
    }
    const res = await pending;

    expect(seen).toMatchObject({ status: 'processing', hospitals: [{ status: 'pending' }, { status: 'pending' }] });
    expect(res.body.status).toBe('completed');
  });
});

describe('history', () => {
  test('when there are more batches than the limit, then pages run newest first without overlap until next_cursor is null', async () => {
    stack = await startStack();
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1) ids.push((await upload(csv(1), `file-${i}.csv`)).body.batch_id);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: request.Response = await request(stack.app).get('/batches').query({ limit: 2, ...(cursor ? { cursor } : {}) });
      expect(res.status).toBe(200);
      seen.push(...res.body.batches.map((b: { batch_id: string }) => b.batch_id));
      cursor = res.body.next_cursor;
      pages += 1;
    } while (cursor);

    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());
  });

  test('a summary carries the counts, activation and ISO 8601 UTC times', async () => {
    stack = await startStack();
    const { body: report } = await upload(csv(2), 'two.csv');

    const res = await request(stack.app).get('/batches');

    expect(res.body.batches).toEqual([
      {
        batch_id: report.batch_id,
        filename: 'two.csv',
        status: 'completed',
        total_hospitals: 2,
        processed_hospitals: 2,
        failed_hospitals: 0,
        batch_activated: true,
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        completed_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        created_by: null,
      },
    ]);
  });

  test('when the service restarts on the same database file, then the history is still there', async () => {
    stack = await startStack();
    const { body: report } = await upload(csv(2));

    await stack.restart();

    const res = await request(stack.app).get(`/batches/${report.batch_id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(report);
  });

  test('when the id is unknown, then 404; when it is not a UUID, then 400', async () => {
    stack = await startStack();

    const missing = await request(stack.app).get('/batches/6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55');
    const malformed = await request(stack.app).get('/batches/12345');

    expect(missing.status).toBe(404);
    expect(missing.body.detail).toBe('No batch with id 6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55.');
    expect(malformed.status).toBe(400);
    expect(malformed.body.detail).toBe('The batch id must be a UUID.');
  });
});
