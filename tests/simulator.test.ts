/**
 * The simulator must behave like the Hospital Directory API described in
 * shared/upstream/CONTRACT.md: each test pins one behaviour, exact status and body.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createSimulator } from '../simulator/simulator.js';
import type { Simulator, SimulatorOptions } from '../simulator/simulator.js';
import { freePort } from '../scripts/free-port.js';

const BATCH = '3f2b8c1e-9d4a-4b6f-8e2a-1c5d7f9a0b3e';
const OTHER_BATCH = '11111111-2222-4333-8444-555555555555';

let sim: Simulator | undefined;

async function start(options: SimulatorOptions = {}): Promise<Simulator> {
  sim = createSimulator({ createDelayMs: 5, ...options });
  await sim.listen();
  return sim;
}

afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

function s(): Simulator {
  if (!sim) throw new Error('simulator not started');
  return sim;
}

function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const init: RequestInit = { method, redirect: 'manual', headers };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json', ...headers };
  }
  return fetch(s().url + path, init);
}

async function expectReply(res: Response, status: number, body: string): Promise<void> {
  expect({ status: res.status, body: await res.text() }).toEqual({ status, body });
}

const hospitalBody = (n: number, batch: string | null = BATCH): Record<string, unknown> => ({
  name: `Hospital ${n}`,
  address: `${n} Main St`,
  phone: `555-000${n}`,
  ...(batch === null ? {} : { creation_batch_id: batch }),
});

async function createOk(n: number, batch: string | null = BATCH): Promise<Record<string, unknown>> {
  const res = await call('POST', '/hospitals/', hospitalBody(n, batch));
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

type RawOutcome = { kind: 'response'; status: number; body: string } | { kind: 'error'; code: string } | { kind: 'timeout' };

/** A request on its own socket, so a reset, a hang or a lost answer shows as such. */
function raw(method: string, path: string, body?: unknown, timeoutMs = 400): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(s().url + path, {
      method,
      agent: false,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    });
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ kind: 'timeout' });
    }, timeoutMs);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ kind: 'response', status: res.statusCode ?? 0, body: text });
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ kind: 'error', code: err.code ?? err.message });
    });
    req.end(payload);
  });
}

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleepMs(5);
  }
}

describe('health and routing', () => {
  test('when GET / is called, then it answers 200 {"status":"OK"} as application/json', async () => {
    await start();
    const res = await call('GET', '/');
    expect(res.headers.get('content-type')).toBe('application/json');
    await expectReply(res, 200, '{"status":"OK"}');
  });

  test('when a path matches no route, then it answers 404 {"detail":"Not Found"}', async () => {
    await start();
    await expectReply(await call('GET', '/nowhere'), 404, '{"detail":"Not Found"}');
    await expectReply(await call('GET', '/hospitals/1/extra'), 404, '{"detail":"Not Found"}');
  });

  test('when a known path is called with a wrong method, then it answers 405 {"detail":"Method Not Allowed"}', async () => {
    await start();
    await expectReply(await call('POST', '/'), 405, '{"detail":"Method Not Allowed"}');
    await expectReply(await call('PATCH', '/hospitals/7'), 405, '{"detail":"Method Not Allowed"}');
    await expectReply(await call('POST', `/hospitals/batch/${BATCH}`, {}), 405, '{"detail":"Method Not Allowed"}');
  });

  test('when POST /hospitals has no trailing slash, then it answers 307 to /hospitals/ with an empty body and stores nothing', async () => {
    await start();
    const res = await call('POST', '/hospitals', hospitalBody(1));
    expect(res.headers.get('location')).toBe(`${s().url}/hospitals/`);
    await expectReply(res, 307, '');
    expect(s().hospitals()).toEqual([]);
  });
});

describe('POST /hospitals/', () => {
  test('when a valid create with a batch id is sent, then it answers 200 with the keys in contract order and an inactive hospital', async () => {
    await start();
    const res = await call('POST', '/hospitals/', { name: 'General', address: '1 Main St', phone: '555-1234', creation_batch_id: BATCH });
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const createdAt = (JSON.parse(text) as { created_at: string }).created_at;
    expect(text).toBe(
      `{"id":1,"name":"General","address":"1 Main St","phone":"555-1234","creation_batch_id":"${BATCH}","active":false,"created_at":"${createdAt}"}`,
    );
  });

  test('when a create has no batch id and no phone, then the hospital is active with null phone and null batch id', async () => {
    await start();
    const res = await call('POST', '/hospitals/', { name: 'Solo', address: '2 Side St' });
    const text = await res.text();
    const createdAt = (JSON.parse(text) as { created_at: string }).created_at;
    expect(res.status).toBe(200);
    expect(text).toBe(`{"id":1,"name":"Solo","address":"2 Side St","phone":null,"creation_batch_id":null,"active":true,"created_at":"${createdAt}"}`);
  });

  test('when a hospital is created, then created_at is zone-less local ISO time with microseconds, stamped after the create delay', async () => {
    await start({ createDelayMs: 150 });
    const sentAt = Date.now();
    const created = await createOk(1);
    const answeredAt = Date.now();
    const createdAt = created.created_at as string;
    expect(createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?$/);
    // A zone-less date-time is read as local time by JavaScript, as the server wrote it.
    const stamped = new Date(createdAt).getTime();
    expect(stamped).toBeGreaterThanOrEqual(sentAt + 150 - 5);
    expect(stamped).toBeLessThanOrEqual(answeredAt);
  });

  test('when creation_batch_id is sent in upper case, then it is stored and echoed in lower case', async () => {
    await start();
    const created = await createOk(1, BATCH.toUpperCase());
    expect(created.creation_batch_id).toBe(BATCH);
    const listed = await call('GET', `/hospitals/batch/${BATCH.toUpperCase()}`);
    await expectReply(listed, 200, JSON.stringify(s().hospitals()));
  });

  test('when hospitals are created and deleted, then ids count up from 1 and are never reused', async () => {
    await start();
    expect((await createOk(1)).id).toBe(1);
    expect((await createOk(2)).id).toBe(2);
    await expectReply(await call('DELETE', '/hospitals/2'), 204, '');
    expect((await createOk(3)).id).toBe(3);
  });

  test('when more than maxHospitals are stored, then the oldest are evicted', async () => {
    await start({ maxHospitals: 2 });
    for (let n = 1; n <= 3; n++) await createOk(n);
    expect(s().hospitals().map((h) => h.id)).toEqual([2, 3]);
  });

  test('when name is missing, then it answers 422 with a pydantic "missing" item for ["body","name"]', async () => {
    await start();
    await expectReply(
      await call('POST', '/hospitals/', { address: 'x' }),
      422,
      '{"detail":[{"type":"missing","loc":["body","name"],"msg":"Field required","input":{"address":"x"}}]}',
    );
  });

  test('when name is blank or address is whitespace only, then it answers 422 value_error for each', async () => {
    await start();
    await expectReply(
      await call('POST', '/hospitals/', { name: '', address: '  \t' }),
      422,
      '{"detail":[' +
        '{"type":"value_error","loc":["body","name"],"msg":"Value error, Name cannot be empty","input":"","ctx":{"error":{}}},' +
        '{"type":"value_error","loc":["body","address"],"msg":"Value error, Address cannot be empty","input":"  \\t","ctx":{"error":{}}}]}',
    );
  });

  test('when a string field holds a number, boolean or null, then it answers 422 string_type', async () => {
    await start();
    await expectReply(
      await call('POST', '/hospitals/', { name: 5, address: null, phone: true }),
      422,
      '{"detail":[' +
        '{"type":"string_type","loc":["body","name"],"msg":"Input should be a valid string","input":5},' +
        '{"type":"string_type","loc":["body","address"],"msg":"Input should be a valid string","input":null},' +
        '{"type":"string_type","loc":["body","phone"],"msg":"Input should be a valid string","input":true}]}',
    );
  });

  test('when creation_batch_id is not a UUID, then it answers 422 uuid_parsing', async () => {
    await start();
    const error = 'invalid group count: expected 5, found 2';
    await expectReply(
      await call('POST', '/hospitals/', { name: 'A', address: 'B', creation_batch_id: 'abc-123' }),
      422,
      `{"detail":[{"type":"uuid_parsing","loc":["body","creation_batch_id"],"msg":"Input should be a valid UUID, ${error}","input":"abc-123","ctx":{"error":"${error}"}}]}`,
    );
  });

  test('when the body is malformed JSON, then it answers 422 json_invalid at the error position', async () => {
    await start();
    const res = await call('POST', '/hospitals/', '{"name": }');
    await expectReply(res, 422, '{"detail":[{"type":"json_invalid","loc":["body",9],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]}');
  });

  test('when the body is empty or not an object, then it answers 422 on ["body"]', async () => {
    await start();
    await expectReply(await call('POST', '/hospitals/'), 422, '{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}');
    await expectReply(
      await call('POST', '/hospitals/', [1]),
      422,
      '{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":[1]}]}',
    );
  });

  test('when a batch already holds 20 hospitals, then a create into it answers 400 and the refusal is counted by the limiter', async () => {
    await start();
    await Promise.all(Array.from({ length: 20 }, (_, n) => createOk(n + 1)));
    await expectReply(await call('POST', '/hospitals/', hospitalBody(21)), 400, '{"detail":"Batch cannot exceed 20 hospitals"}');
    // 20 + the refused one = 21 counted: 9 more fit in the 30/min budget, the 10th does not.
    for (let n = 0; n < 9; n++) await createOk(100 + n, OTHER_BATCH);
    await expectReply(await call('POST', '/hospitals/', hospitalBody(200, null)), 429, '{"error":"Rate limit exceeded: 30 per 1 minute"}');
  });

  test('when a create goes into a full batch while other creates are in flight, then its 400 comes before the create delay', async () => {
    await start();
    await Promise.all(Array.from({ length: 20 }, (_, n) => createOk(n + 1)));
    s().setCreateDelay(700);
    const slow = call('POST', '/hospitals/', hospitalBody(50, OTHER_BATCH));
    const started = Date.now();
    await expectReply(await call('POST', '/hospitals/', hospitalBody(21)), 400, '{"detail":"Batch cannot exceed 20 hospitals"}');
    expect(Date.now() - started).toBeLessThan(500);
    expect((await slow).status).toBe(200);
  });

  test('when 21 creates into an empty batch are sent at once, then they race past the cap and all 21 are stored', async () => {
    await start({ createDelayMs: 50 });
    const statuses = await Promise.all(Array.from({ length: 21 }, (_, n) => call('POST', '/hospitals/', hospitalBody(n)).then((r) => r.status)));
    expect(statuses).toEqual(Array(21).fill(200));
    expect(s().hospitals().filter((h) => h.creation_batch_id === BATCH)).toHaveLength(21);
  });

  test('when creates are in flight, then GET / is answered without waiting for them', async () => {
    await start({ createDelayMs: 800 });
    const pending = call('POST', '/hospitals/', hospitalBody(1));
    await waitFor(() => s().stats().inFlightCreates === 1);
    const started = Date.now();
    await expectReply(await call('GET', '/'), 200, '{"status":"OK"}');
    expect(Date.now() - started).toBeLessThan(300);
    expect((await pending).status).toBe(200);
  });
});

describe('reading and changing hospitals', () => {
  test('when GET /hospitals/ is called, then it answers 200 with the array of all hospitals', async () => {
    await start();
    await expectReply(await call('GET', '/hospitals/'), 200, '[]');
    await createOk(1);
    await createOk(2, null);
    await expectReply(await call('GET', '/hospitals/'), 200, JSON.stringify(s().hospitals()));
    expect(s().hospitals()).toHaveLength(2);
  });

  test('when GET /hospitals/{id} names a stored or an absent hospital, then it answers 200 with it or 404 "Hospital not found"', async () => {
    await start();
    const created = await createOk(1);
    await expectReply(await call('GET', '/hospitals/1'), 200, JSON.stringify(created));
    await expectReply(await call('GET', '/hospitals/99'), 404, '{"detail":"Hospital not found"}');
  });

  test('when the hospital id is not an integer, then it answers 422 int_parsing on ["path","hospital_id"]', async () => {
    await start();
    await expectReply(
      await call('GET', '/hospitals/abc'),
      422,
      '{"detail":[{"type":"int_parsing","loc":["path","hospital_id"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"abc"}]}',
    );
  });

  test('when PUT /hospitals/{id} sends only a name, then only the name changes; an absent id answers 404', async () => {
    await start();
    const created = await createOk(1);
    const res = await call('PUT', '/hospitals/1', { name: 'Renamed' });
    await expectReply(res, 200, JSON.stringify({ ...created, name: 'Renamed' }));
    await expectReply(await call('PUT', '/hospitals/1', { phone: null }), 200, JSON.stringify({ ...created, name: 'Renamed', phone: null }));
    await expectReply(await call('PUT', '/hospitals/99', { name: 'X' }), 404, '{"detail":"Hospital not found"}');
    await expectReply(
      await call('PUT', '/hospitals/1', { address: 7 }),
      422,
      '{"detail":[{"type":"string_type","loc":["body","address"],"msg":"Input should be a valid string","input":7}]}',
    );
  });

  test('when DELETE /hospitals/{id} removes a hospital, then it answers 204 with an empty body but a JSON content type, then 404', async () => {
    await start();
    await createOk(1);
    const res = await call('DELETE', '/hospitals/1');
    expect(res.headers.get('content-type')).toBe('application/json');
    await expectReply(res, 204, '');
    await expectReply(await call('GET', '/hospitals/1'), 404, '{"detail":"Hospital not found"}');
    await expectReply(await call('DELETE', '/hospitals/1'), 404, '{"detail":"Hospital not found"}');
  });
});

describe('batches', () => {
  test('when GET /hospitals/batch/{id} names a batch with rows, then it answers 200 with exactly those rows', async () => {
    await start();
    await createOk(1);
    await createOk(2, OTHER_BATCH);
    await createOk(3);
    const expected = s().hospitals().filter((h) => h.creation_batch_id === BATCH);
    await expectReply(await call('GET', `/hospitals/batch/${BATCH}`), 200, JSON.stringify(expected));
  });

  test('when the batch has no rows, then it answers 404 "No hospitals found with the specified batch ID"', async () => {
    await start();
    await expectReply(await call('GET', `/hospitals/batch/${BATCH}`), 404, '{"detail":"No hospitals found with the specified batch ID"}');
  });

  test('when the batch id in the path is not a UUID, then it answers 422 uuid_parsing on ["path","batch_id"]', async () => {
    await start();
    const error = 'invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `n` at 1';
    await expectReply(
      await call('GET', '/hospitals/batch/nope'),
      422,
      `{"detail":[{"type":"uuid_parsing","loc":["path","batch_id"],"msg":"Input should be a valid UUID, ${error}","input":"nope","ctx":{"error":"${error}"}}]}`,
    );
  });

  test('when an inactive batch is activated, then it answers 200 with the count and every row becomes active', async () => {
    await start();
    for (let n = 1; n <= 3; n++) await createOk(n);
    await expectReply(
      await call('PATCH', `/hospitals/batch/${BATCH}/activate`),
      200,
      `{"activated_count":3,"message":"Activated 3 hospital(s) with batch ID ${BATCH}"}`,
    );
    expect(s().hospitals().map((h) => h.active)).toEqual([true, true, true]);
  });

  test('when activation is retried on an active batch, then it answers 400 "already active"; an unknown batch answers 404', async () => {
    await start();
    await createOk(1);
    await call('PATCH', `/hospitals/batch/${BATCH}/activate`);
    await expectReply(
      await call('PATCH', `/hospitals/batch/${BATCH}/activate`),
      400,
      '{"detail":"Cannot activate batch: one or more hospitals in the batch are already active"}',
    );
    await expectReply(await call('PATCH', `/hospitals/batch/${OTHER_BATCH}/activate`), 404, '{"detail":"No hospitals found with the specified batch ID"}');
  });

  test('when DELETE /hospitals/batch/{id} names a batch, then it answers 200 with the count and a second delete answers 404', async () => {
    await start();
    await createOk(1);
    await createOk(2);
    await createOk(3, OTHER_BATCH);
    await expectReply(await call('DELETE', `/hospitals/batch/${BATCH}`), 200, `{"deleted_count":2,"message":"Deleted 2 hospital(s) with batch ID ${BATCH}"}`);
    expect(s().hospitals().map((h) => h.id)).toEqual([3]);
    await expectReply(await call('DELETE', `/hospitals/batch/${BATCH}`), 404, '{"detail":"No hospitals found with the specified batch ID"}');
  });
});

describe('rate limits', () => {
  async function statuses(n: number, send: () => Promise<Response>): Promise<number[]> {
    const out: number[] = [];
    for (let k = 0; k < n; k++) out.push((await send()).status);
    return out;
  }

  test('when 31 creates are sent in a minute, then the 31st answers 429 "30 per 1 minute" with no Retry-After or X-RateLimit headers', async () => {
    await start({ createDelayMs: 0 });
    expect(await statuses(30, () => call('POST', '/hospitals/', hospitalBody(1, null)))).toEqual(Array(30).fill(200));
    const res = await call('POST', '/hospitals/', hospitalBody(1, null));
    expect(res.headers.get('retry-after')).toBeNull();
    expect([...res.headers.keys()].filter((k) => k.startsWith('x-ratelimit'))).toEqual([]);
    await expectReply(res, 429, '{"error":"Rate limit exceeded: 30 per 1 minute"}');
    expect(s().stats().count429).toBe(1);
    expect(s().stats().createTimes).toHaveLength(31);
  });

  test('when GET /hospitals/ is called 51 times, then the 51st answers 429 "50 per 1 minute" while POST /hospitals/ keeps its own counter', async () => {
    await start();
    expect(await statuses(50, () => call('GET', '/hospitals/'))).toEqual(Array(50).fill(200));
    await expectReply(await call('GET', '/hospitals/'), 429, '{"error":"Rate limit exceeded: 50 per 1 minute"}');
    await createOk(1);
  });

  test('when GET / is called 101 times, then the 101st answers 429 "100 per 1 minute"', async () => {
    await start();
    expect(await statuses(100, () => call('GET', '/'))).toEqual(Array(100).fill(200));
    await expectReply(await call('GET', '/'), 429, '{"error":"Rate limit exceeded: 100 per 1 minute"}');
  });

  test('when one batch path exhausts its budget, then another batch path still answers, and GET/PUT/DELETE on one id share a counter', async () => {
    await start();
    await statuses(50, () => call('GET', `/hospitals/batch/${BATCH}`));
    await expectReply(await call('GET', `/hospitals/batch/${BATCH}`), 429, '{"error":"Rate limit exceeded: 50 per 1 minute"}');
    await expectReply(await call('GET', `/hospitals/batch/${OTHER_BATCH}`), 404, '{"detail":"No hospitals found with the specified batch ID"}');

    expect(await statuses(25, () => call('GET', '/hospitals/7'))).toEqual(Array(25).fill(404));
    expect(await statuses(25, () => call('DELETE', '/hospitals/7'))).toEqual(Array(25).fill(404));
    await expectReply(await call('PUT', '/hospitals/7', { name: 'X' }), 429, '{"error":"Rate limit exceeded: 50 per 1 minute"}');
    await expectReply(await call('GET', '/hospitals/8'), 404, '{"detail":"Hospital not found"}');
  });

  test('when creates are refused with 422, then they are not counted by the limiter', async () => {
    await start({ createDelayMs: 0 });
    expect(await statuses(40, () => call('POST', '/hospitals/', { name: '' }))).toEqual(Array(40).fill(422));
    expect(await statuses(30, () => call('POST', '/hospitals/', hospitalBody(1, null)))).toEqual(Array(30).fill(200));
    await expectReply(await call('POST', '/hospitals/', hospitalBody(1, null)), 429, '{"error":"Rate limit exceeded: 30 per 1 minute"}');
    expect(s().stats().createTimes).toHaveLength(31);
  });

  test('when the window is fixed, then hits while blocked do not extend it and the next window starts with a full budget', async () => {
    await start({ rateLimits: { windowMs: 400 } });
    await statuses(25, () => call('GET', '/hospitals/'));
    // Timed from the window's start, the first counted hit as the simulator received it (a
    // loaded machine once delivered it 50 ms after the test sent it, and the hits meant for
    // the next window landed in this one).
    const windowStart = s().requests[0]!.receivedAt;
    const since = () => Date.now() - windowStart;
    await sleepMs(200 - since());
    await statuses(25, () => call('GET', '/hospitals/'));
    // Blocked hits near the end of the window must not push it back.
    while (since() < 330) {
      expect((await call('GET', '/hospitals/')).status).toBe(429);
      await sleepMs(20);
    }
    await sleepMs(450 - since());
    // A sliding window would still count the 25 hits sent at ~200 ms.
    expect(await statuses(50, () => call('GET', '/hospitals/'))).toEqual(Array(50).fill(200));
    await expectReply(await call('GET', '/hospitals/'), 429, '{"error":"Rate limit exceeded: 50 per 1 minute"}');
  });

  test('when rate limits are disabled, then no request is refused with 429', async () => {
    await start({ rateLimits: false });
    expect(await statuses(60, () => call('GET', '/hospitals/'))).toEqual(Array(60).fill(200));
  });
});

describe('hosting: cold start and sleep', () => {
  test('when the first requests arrive at a cold instance, then they are held until the wake-up ends and then served', async () => {
    await start({ coldStartMs: 400 });
    const t0 = Date.now();
    const first = call('GET', '/');
    await sleepMs(150);
    const second = call('GET', '/hospitals/');
    await expectReply(await first, 200, '{"status":"OK"}');
    await expectReply(await second, 200, '[]');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(390);
    expect(Date.now() - t0).toBeLessThan(800);
    const warm = Date.now();
    await call('GET', '/');
    expect(Date.now() - warm).toBeLessThan(150);
  });

  test('when the instance sleeps, then every hospital and rate-limit counter is gone, ids restart at 1 and the next request is cold', async () => {
    await start({ createDelayMs: 0, coldStartMs: 300 });
    await call('GET', '/');
    for (let n = 0; n < 30; n++) await createOk(n, null);
    await expectReply(await call('POST', '/hospitals/', hospitalBody(31)), 429, '{"error":"Rate limit exceeded: 30 per 1 minute"}');
    s().sleep();
    expect(s().hospitals()).toEqual([]);
    const t0 = Date.now();
    await expectReply(await call('GET', `/hospitals/batch/${BATCH}`), 404, '{"detail":"No hospitals found with the specified batch ID"}');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect((await createOk(1)).id).toBe(1);
  });

  test('when reset() is called, then state, requests, faults and stats are wiped without a cold start', async () => {
    await start({ coldStartMs: 200 });
    await createOk(1);
    s().inject('health', { kind: 'status', status: 500 });
    s().reset();
    expect(s().requests).toEqual([]);
    expect(s().stats()).toEqual({ inFlightCreates: 0, maxInFlightCreates: 0, count429: 0, createTimes: [] });
    const t0 = Date.now();
    await expectReply(await call('GET', '/'), 200, '{"status":"OK"}');
    expect(Date.now() - t0).toBeLessThan(150);
    expect((await createOk(1)).id).toBe(1);
  });
});

describe('faults', () => {
  test('when a status fault is injected, then the next request to that route gets it without being handled, and the one after is normal', async () => {
    await start();
    s().inject('create', { kind: 'status', status: 503 });
    s().inject('create', { kind: 'status', status: 502, body: { message: 'Bad gateway' } });
    await expectReply(await call('POST', '/hospitals/', hospitalBody(1)), 503, '{"detail":"Simulated 503"}');
    await expectReply(await call('POST', '/hospitals/', hospitalBody(2)), 502, '{"message":"Bad gateway"}');
    expect(s().hospitals()).toEqual([]);
    expect((await createOk(3)).id).toBe(1);
    await expectReply(await call('GET', '/'), 200, '{"status":"OK"}');
  });

  test('when a status fault with store:true hits a create, then the hospital IS stored but the client gets the fault', async () => {
    await start();
    s().inject('create', { kind: 'status', status: 500, store: true });
    await expectReply(await call('POST', '/hospitals/', hospitalBody(1)), 500, '{"detail":"Simulated 500"}');
    expect(s().hospitals().map((h) => h.name)).toEqual(['Hospital 1']);
  });

  test('when a fault is injected several times, then it is consumed once per request', async () => {
    await start();
    s().inject('health', { kind: 'status', status: 429, body: { error: 'x' } }, 2);
    await expectReply(await call('GET', '/'), 429, '{"error":"x"}');
    await expectReply(await call('GET', '/'), 429, '{"error":"x"}');
    await expectReply(await call('GET', '/'), 200, '{"status":"OK"}');
  });

  test('when a reset fault is injected, then the socket is destroyed on arrival and nothing is stored', async () => {
    await start();
    s().inject('create', { kind: 'reset' });
    const outcome = await raw('POST', '/hospitals/', hospitalBody(1));
    expect(outcome.kind).toBe('error');
    await sleepMs(30);
    expect(s().hospitals()).toEqual([]);
    expect(s().requests[0]).toMatchObject({ route: 'create', status: null, durationMs: null });
  });

  test('when a hang fault with store:true is injected, then the client gets no answer but the hospital is stored after the delay', async () => {
    await start({ createDelayMs: 50 });
    s().inject('create', { kind: 'hang', store: true });
    expect(await raw('POST', '/hospitals/', hospitalBody(1), 300)).toEqual({ kind: 'timeout' });
    expect(s().hospitals().map((h) => h.id)).toEqual([1]);
    expect(s().requests[0]?.status).toBeNull();
  });

  test('when a hang fault without store is injected, then nothing is stored and close() still returns promptly', async () => {
    await start({ createDelayMs: 0 });
    s().inject('create', { kind: 'hang' });
    const pending = raw('POST', '/hospitals/', hospitalBody(1), 5000);
    await waitFor(() => s().requests.length === 1);
    await sleepMs(50);
    expect(s().hospitals()).toEqual([]);
    const t0 = Date.now();
    await s().close();
    expect(Date.now() - t0).toBeLessThan(500);
    expect((await pending).kind).toBe('error');
  });

  test('when lose-response hits a create, then the hospital is stored but the client sees the connection drop', async () => {
    await start({ createDelayMs: 20 });
    s().inject('create', { kind: 'lose-response' });
    const outcome = await raw('POST', '/hospitals/', hospitalBody(1), 2000);
    expect(outcome.kind).toBe('error');
    expect(s().hospitals().map((h) => h.name)).toEqual(['Hospital 1']);
  });

  test('when a pass fault is queued before a status fault, then the first request is served normally and the second gets the status', async () => {
    await start();
    s().inject('create', { kind: 'pass' });
    s().inject('create', { kind: 'status', status: 400, body: { detail: 'Refused' } });
    await createOk(1);
    await expectReply(await call('POST', '/hospitals/', hospitalBody(2)), 400, '{"detail":"Refused"}');
    expect(s().hospitals().map((h) => h.name)).toEqual(['Hospital 1']);
  });

  test('when lose-response hits an activate, then the batch is activated and the retry answers 400 "already active"', async () => {
    await start();
    await createOk(1);
    s().inject('activate', { kind: 'lose-response' });
    expect((await raw('PATCH', `/hospitals/batch/${BATCH}/activate`, undefined, 2000)).kind).toBe('error');
    expect(s().hospitals().map((h) => h.active)).toEqual([true]);
    await expectReply(
      await call('PATCH', `/hospitals/batch/${BATCH}/activate`),
      400,
      '{"detail":"Cannot activate batch: one or more hospitals in the batch are already active"}',
    );
  });
});

describe('observation', () => {
  test('when requests are served, then each is recorded in arrival order with route, parsed body, status and duration', async () => {
    await start({ createDelayMs: 30 });
    await call('GET', '/');
    await createOk(1);
    await call('GET', '/missing');
    const [health, create, missing] = s().requests;
    expect(s().requests).toHaveLength(3);
    expect(health).toMatchObject({ method: 'GET', path: '/', route: 'health', body: null, status: 200 });
    expect(create).toMatchObject({ method: 'POST', path: '/hospitals/', route: 'create', body: hospitalBody(1), status: 200 });
    expect(create?.durationMs).toBeGreaterThanOrEqual(25);
    expect(missing).toMatchObject({ route: null, status: 404 });
    expect(health!.receivedAt).toBeLessThanOrEqual(create!.receivedAt);
  });

  test('when creates overlap, then stats report the maximum in flight and settle back to zero', async () => {
    await start({ createDelayMs: 100 });
    await Promise.all(Array.from({ length: 5 }, (_, n) => createOk(n)));
    const stats = s().stats();
    expect(stats.maxInFlightCreates).toBe(5);
    expect(stats.inFlightCreates).toBe(0);
    expect(stats.createTimes).toHaveLength(5);
    expect(stats.count429).toBe(0);
  });

  test('when the /__sim admin API is driven over HTTP, then it injects faults, reports state and requests, sets the delay, sleeps and resets', async () => {
    await start();
    const admin = (method: string, path: string, body?: unknown): Promise<Response> => call(method, `/__sim/${path}`, body);
    await expectReply(await admin('POST', 'faults', { route: 'health', fault: { kind: 'status', status: 502 }, times: 1 }), 200, '{"ok":true}');
    const refused = await admin('POST', 'faults', { route: 'nope', fault: { kind: 'status', status: 502 } });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({ error: expect.stringContaining('route') });
    await expectReply(await call('GET', '/'), 502, '{"detail":"Simulated 502"}');
    await expectReply(await admin('POST', 'delay', { ms: 0 }), 200, '{"ok":true}');
    await createOk(1);

    const state = (await (await admin('GET', 'state')).json()) as { hospitals: unknown[]; stats: { createTimes: number[] } };
    expect(state.hospitals).toEqual(s().hospitals());
    expect(state.stats.createTimes).toHaveLength(1);
    const requests = (await (await admin('GET', 'requests')).json()) as { path: string }[];
    expect(requests.map((r) => r.path)).toEqual(['/', '/hospitals/']);

    await expectReply(await admin('POST', 'sleep'), 200, '{"ok":true}');
    expect(s().hospitals()).toEqual([]);
    expect(s().requests).toHaveLength(2);
    await expectReply(await admin('POST', 'reset'), 200, '{"ok":true}');
    expect(s().requests).toEqual([]);
  });
});

describe('cli', () => {


  function runCli(args: string[]) {
    const child = spawn('node_modules/.bin/tsx', ['simulator/cli.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    return { child, exited, out: () => stdout, err: () => stderr };
  }

  /**
   * The CLI on a port found free just before: a test file in another jest worker may take
   * it in between, and then the CLI says so and exits 1, having served nothing. Only that
   * failure is tried again, on another port.
   */
  async function runCliOnFreePort(args: string[]) {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const cli = runCli(['--port', String(port), ...args]);
      let exited = false;
      void cli.exited.then(() => (exited = true));
      const deadline = Date.now() + 15_000;
      while (!cli.out().includes('\n') && !exited && Date.now() < deadline) await sleepMs(20);
      const taken = exited && cli.out() === '' && /^sim: cannot listen: listen EADDRINUSE/.test(cli.err());
      if (!taken || attempt === 5) return { cli, port };
    }
  }

  test('when started with --port, then it prints its URL, serves GET / and exits on SIGTERM', async () => {
    const { cli, port } = await runCliOnFreePort(['--delay-ms', '10']);
    try {
      expect(cli.out()).toBe(`Hospital Directory simulator listening on http://127.0.0.1:${port}\n`);
      const res = await fetch(`http://127.0.0.1:${port}/`);
      await expectReply(res, 200, '{"status":"OK"}');
    } finally {
      cli.child.kill('SIGTERM');
    }
    const [code, signal] = await cli.exited;
    expect(code === 0 || signal === 'SIGTERM').toBe(true);
  });

  test('when given --help, then it lists every option it accepts and every /__sim control, and exits 0', async () => {
    const source = (file: string) => readFileSync(fileURLToPath(new URL(`../simulator/${file}`, import.meta.url)), 'utf8');
    const options = [...source('cli.ts').matchAll(/^\s+'?([a-z-]+)'?: \{ type: '(?:string|boolean)'/gm)].map((m) => `--${m[1]}`);
    const controls = [...source('simulator.ts').matchAll(/case '(GET|POST) (\/__sim\/\w+)'/g)].map((m) => m[2]!);

    const cli = runCli(['--help']);
    const [code] = await cli.exited;

    expect(code).toBe(0);
    expect(options).toEqual(expect.arrayContaining(['--port', '--delay-ms', '--no-rate-limits', '--help']));
    expect(controls).toEqual(expect.arrayContaining(['/__sim/faults', '/__sim/reset']));
    expect(options.filter((option) => !cli.out().includes(option))).toEqual([]);
    expect(controls.filter((control) => !cli.out().includes(control))).toEqual([]);
    expect(cli.err()).toBe('');
  });

  test('when given an unknown flag, then it prints one line on stderr and exits 2', async () => {
    const cli = runCli(['--bogus']);
    const [code] = await cli.exited;
    expect(code).toBe(2);
    expect(cli.err()).toMatch(/^sim: Unknown option '--bogus'.*\n$/);
    expect(cli.err().trim().split('\n')).toHaveLength(1);
  });
});
