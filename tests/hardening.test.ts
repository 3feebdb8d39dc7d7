/**
 * Hostile and careless HTTP, over real sockets against the server production runs
 * (createHttpServer around the real app): every refusal reaches the client as problem
 * JSON, including clients that write their whole body before reading, malformed multipart
 * bodies and requests Node's own parser refuses; nothing reaches the directory or the history.
 */
import type http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import request from 'supertest';
import { createHttpServer } from '../src/http/httpServer.js';
import { startStack, type Stack } from './helpers.js';

const MB = 1024 * 1024;
const KEY = 'k3y-for-tests-0123456789';
const BOUNDARY = 'hardening-boundary-41c2';
const TOO_LARGE = 'The file is larger than the 1048576 bytes allowed per upload.';
const ONE_FILE = 'send the CSV as the one file of a multipart/form-data body, in the field "file" (curl -F "file=@hospitals.csv")';

let stack: Stack;
let server: http.Server | undefined;
let port: number;

async function serve(env: Record<string, string> = {}) {
  stack = await startStack({ env });
  server = createHttpServer(stack.app, stack.config).listen(0, '127.0.0.1');
  await new Promise((resolve) => server!.once('listening', resolve));
  port = (server.address() as AddressInfo).port;
}

afterEach(async () => {
  if (server) {
    server.closeAllConnections();
    await new Promise((resolve) => server!.close(resolve));
    server = undefined;
  }
  await stack?.close();
});

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** What writing the request ended with: null when every byte was handed over. */
  writeError: string | null;
}

/**
 * One request on a fresh connection, the way Python's urllib and requests send it: every
 * byte written first, and only then is the answer read, until the server closes.
 */
function exchange(bytes: Buffer | string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let writeError: string | null = null;
    socket.on('error', (error: NodeJS.ErrnoException) => {
      writeError ??= error.code ?? error.message;
    });
    socket.write(bytes, (error) => {
      if (error) writeError ??= (error as NodeJS.ErrnoException).code ?? error.message;
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    });
    socket.on('close', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const end = raw.indexOf('\r\n\r\n');
      if (end === -1) return reject(new Error(`no HTTP answer (write: ${writeError}); received ${JSON.stringify(raw.slice(0, 200))}`));
      const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
      const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: raw.slice(end + 4), writeError });
    });
  });
}

/** A multipart upload of `content` as the file, with the whole request as bytes. */
function multipartRequest(content: Buffer, headers: Record<string, string> = {}, path = '/hospitals/bulk'): Buffer {
  const body = Buffer.concat([
    Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\nContent-Type: text/csv\r\n\r\n`),
    content,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
  return rawRequest('POST', path, { 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}`, 'Content-Length': String(body.length), ...headers }, body);
}

function rawRequest(method: string, path: string, headers: Record<string, string>, body: Buffer | string = ''): Buffer {
  const head = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
  return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body)]);
}

/** The answer is problem JSON with this status and detail. */
function expectProblem(answer: RawAnswer, status: number, detail: string | RegExp) {
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(answer.body) as Record<string, unknown>;
  expect(body).toMatchObject({ status, type: expect.stringMatching(/^urn:hospital-bulk:problem:/), title: expect.any(String) });
  if (typeof detail === 'string') expect(body.detail).toBe(detail);
  else expect(body.detail).toMatch(detail);
}

/** After a refusal: the directory saw nothing and the history holds nothing. */
async function expectNothingHappened() {
  expect(stack.sim.requests).toEqual([]);
  const history = await request(stack.app).get('/batches').set('Authorization', `Bearer ${KEY}`);
  expect(history.status).toBe(200);
  expect(history.body).toEqual({ batches: [], next_cursor: null });
}

describe('when a client writes its whole body before reading the answer', () => {
  test.each([2, 5, 20])(
    'when the body is %i MB, then it gets its 413 problem JSON every time, with Connection: keep-alive or close',
    async (megabytes) => {
      await serve();
      const content = Buffer.alloc(megabytes * MB, 'a');

      for (const connection of ['close', 'keep-alive', 'close']) {
        const answer = await exchange(multipartRequest(content, { Connection: connection }));

        expect(answer.writeError).toBeNull();
        expectProblem(answer, 413, TOO_LARGE);
        expect(answer.headers['connection']).toBe('close');
      }
      await expectNothingHappened();
    },
    60_000,
  );

  test.each([5, 20])('when a %i MB upload has no API key, then it gets its 401 problem JSON every time', async (megabytes) => {
    await serve({ API_KEY: KEY });
    const content = Buffer.alloc(megabytes * MB, 'a');

    for (const connection of ['close', 'keep-alive']) {
      const answer = await exchange(multipartRequest(content, { Connection: connection }));

      expect(answer.writeError).toBeNull();
      expectProblem(answer, 401, 'This service needs an API key: send Authorization: Bearer <key>.');
      expect(answer.headers['www-authenticate']).toBe('Bearer realm="hospital-bulk"');
    }
    await expectNothingHappened();
  }, 60_000);

  test('when a 5 MB upload is over the rate limit, then it gets its 429 problem JSON with Retry-After', async () => {
    await serve({ UPLOAD_RATE_PER_MIN: '1' });
    const small = await exchange(multipartRequest(Buffer.from('name,address\n'), { Connection: 'close' }));
    expect(small.status).toBe(400); // the one upload of the minute: a file with no data rows

    const answer = await exchange(multipartRequest(Buffer.alloc(5 * MB, 'a'), { Connection: 'close' }));

    expect(answer.writeError).toBeNull();
    const seconds = Number(answer.headers['retry-after']);
    expectProblem(answer, 429, `At most 1 uploads, resumes and rollbacks per minute from one client; try again in ${seconds} second${seconds === 1 ? '' : 's'}.`);
    await expectNothingHappened();
  }, 60_000);
});

describe('when the multipart body is malformed', () => {
  const disposition = 'Content-Disposition: form-data; name="file"; filename="h.csv"\r\nContent-Type: text/csv\r\n\r\n';
  const csv = 'name,address\nGeneral Hospital,1 Main St\n';
  const cases: [string, string, string, string][] = [
    ['there is no closing boundary', `multipart/form-data; boundary=${BOUNDARY}`, `--${BOUNDARY}\r\n${disposition}${csv}`, 'The multipart body'],
    ['it is cut off in the middle of the file', `multipart/form-data; boundary=${BOUNDARY}`, `--${BOUNDARY}\r\n${disposition}name,addr`, 'The multipart body'],
    ['the body is empty', `multipart/form-data; boundary=${BOUNDARY}`, '', 'The multipart body ended before its closing boundary'],
    ['the boundary never appears', `multipart/form-data; boundary=${BOUNDARY}`, csv, 'The multipart body ended before its closing boundary'],
    ['the Content-Type has no boundary', 'multipart/form-data', `--${BOUNDARY}\r\n${disposition}${csv}--${BOUNDARY}--\r\n`, 'The Content-Type multipart/form-data has no boundary'],
    [
      'a part header is 20 kB long (a 20,000-character file name)',
      `multipart/form-data; boundary=${BOUNDARY}`,
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${'n'.repeat(20_000)}.csv"\r\n\r\n${csv}\r\n--${BOUNDARY}--\r\n`,
      'A part header of the multipart body is malformed or longer than 16 KB',
    ],
  ];

  test.each(cases)('when %s, then 400 problem JSON says what is wrong with the request, never 500', async (_label, type, body, start) => {
    await serve();

    for (const path of ['/hospitals/bulk', '/hospitals/bulk/validate']) {
      const answer = await exchange(rawRequest('POST', path, { 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close' }, body));

      expectProblem(answer, 400, new RegExp(`^${start}.*; ${ONE_FILE.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.$`));
      expect(answer.body).not.toMatch(/busboy|Unexpected end|Malformed part|Boundary not found|\bat \S+ \(/);
    }
    await expectNothingHappened();
  });
});

describe("when Node's HTTP parser refuses the request itself", () => {
  const post = (headers: string) => `POST /hospitals/bulk HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`;

  test.each([
    ['a 20 kB header', 431, post(`X-Padding: ${'p'.repeat(20_000)}\r\nContent-Length: 0\r\n`), 'The request headers are larger than the 16 KB this server accepts in all.'],
    ['a control character in a header', 400, post('X-Note: a\u0001b\r\nContent-Length: 0\r\n'), 'A header holds a character that is not allowed there (for example a control character).'],
    ['Content-Length: abc', 400, post('Content-Length: abc\r\n'), 'The Content-Length header is not a whole number of bytes.'],
    [
      'both Content-Length and Transfer-Encoding',
      400,
      post('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n') + '0\r\n\r\n',
      'The body length is ambiguous or not understood: send either Content-Length or Transfer-Encoding: chunked, not both.',
    ],
  ])('when the request has %s, then %i problem JSON, and the connection closes', async (_label, status, raw, detail) => {
    await serve();

    const answer = await exchange(raw);

    expectProblem(answer, status, detail);
    expect(answer.headers['connection']).toBe('close');
    await expectNothingHappened();
  });

  test('when a request is not received within REQUEST_TIMEOUT_MS, then 408 problem JSON names the limit, and the connection closes', async () => {
    await serve({ REQUEST_TIMEOUT_MS: '1000' });

    // Headers and the start of a body that never finishes: the client waits for the answer.
    const answer = await new Promise<RawAnswer>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', reject);
      socket.on('close', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const end = raw.indexOf('\r\n\r\n');
        const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
        const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
        resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: raw.slice(end + 4), writeError: null });
      });
      socket.write(rawRequest('POST', '/hospitals/bulk', { 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}`, 'Content-Length': '1000' }, `--${BOUNDARY}\r\n`));
    });

    expectProblem(answer, 408, 'The request did not arrive in time: the whole request must be received within 1 s.');
    expect(answer.headers['connection']).toBe('close');
    await expectNothingHappened();
  });
});

describe('rate limits that fit the work', () => {
  const csv = Buffer.from('name,address\nGeneral Hospital,1 Main St\n');
  const exactWait = (res: request.Response, what: string, limit: number) => {
    const seconds = Number(res.headers['retry-after']);
    expect(Number.isInteger(seconds) && seconds >= 1 && seconds <= 60).toBe(true);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({
      status: 429,
      detail: `At most ${limit} ${what} per minute from one client; try again in ${seconds} second${seconds === 1 ? '' : 's'}.`,
    });
  };

  test('when a client has used its uploads, then dry runs still go through on their own budget (VALIDATE_RATE_PER_MIN), until that too is spent', async () => {
    stack = await startStack({ env: { UPLOAD_RATE_PER_MIN: '1', VALIDATE_RATE_PER_MIN: '2' } });
    expect((await request(stack.app).post('/hospitals/bulk').attach('file', csv, 'h.csv')).status).toBe(200);
    const before = stack.sim.requests.length;

    const upload = await request(stack.app).post('/hospitals/bulk').attach('file', csv, 'h.csv');
    const dryRuns = [];
    for (let i = 0; i < 3; i++) dryRuns.push(await request(stack.app).post('/hospitals/bulk/validate').attach('file', csv, 'h.csv'));

    expect(upload.status).toBe(429);
    exactWait(upload, 'uploads, resumes and rollbacks', 1);
    expect(dryRuns.map((res) => res.status)).toEqual([200, 200, 429]);
    exactWait(dryRuns[2]!, 'dry runs', 2);
    // Only the two dry runs' directory reads went out; no batch was recorded for the refused upload.
    expect(stack.sim.requests.slice(before).every((r) => r.method === 'GET')).toBe(true);
    expect((await request(stack.app).get('/batches')).body.batches).toHaveLength(1);
  });

  test('when a client has used its write budget, then a rollback answers 429 and deletes nothing upstream', async () => {
    stack = await startStack({ env: { UPLOAD_RATE_PER_MIN: '1' } });
    const created = await request(stack.app).post('/hospitals/bulk').attach('file', csv, 'h.csv');
    expect(created.status).toBe(200);

    const rollback = await request(stack.app).post(`/batches/${created.body.batch_id}/rollback`);

    expect(rollback.status).toBe(429);
    exactWait(rollback, 'uploads, resumes and rollbacks', 1);
    expect(stack.sim.requests.filter((r) => r.method === 'DELETE')).toEqual([]);
    expect(stack.sim.hospitals()).toHaveLength(1);
    expect((await request(stack.app).get(`/batches/${created.body.batch_id}`)).body.status).toBe('completed');
  });
});

describe('the event stream', () => {
  test('when the batch has finished, then the stream ends with its report and the server closes the connection', async () => {
    await serve();
    const created = await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from('name,address\nA,1 Main St\n'), 'h.csv');
    expect(created.status).toBe(200);

    // Keep-alive asked for: only the server's Connection: close ends the socket.
    const answer = await exchange(rawRequest('GET', `/batches/${created.body.batch_id}/events`, { Connection: 'keep-alive' }));

    expect(answer.status).toBe(200);
    expect(answer.headers['connection']).toBe('close');
    expect(answer.body).toMatch(/event: report\ndata: \{.*"status":"completed"/);
  });
});
