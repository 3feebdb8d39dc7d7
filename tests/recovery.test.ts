/**
 * "Never lose a row": what happens to a batch when the process dies, the directory goes
 * down, forgets everything, or the same upload is sent twice. Every test checks both what
 * a user sees (the HTTP answers, GET /batches/:id) and what the directory (the simulator,
 * over real HTTP) holds and received. Crashes and signals run the BUILT server as a child
 * process (`npm run build` first); the rest runs the real app in-process with supertest.
 */
import http from 'node:http';
import { join } from 'node:path';
import request from 'supertest';
import type { BatchReport, toSummary } from '../src/http/presenter.js';
import type { Simulator } from '../simulator/simulator.js';
import { requestsTo, startSimulator, startStack, tempDir, type Stack } from './helpers.js';
import { killAllServices, startService, waitUntil, type ServiceProcess } from './service-process.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PROBLEM_JSON = /^application\/problem\+json/;
const UNKNOWN_ID = '6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55';

const names = (rows: number, prefix = 'Hospital') => Array.from({ length: rows }, (_, i) => `${prefix} ${i + 1}`);
const csv = (rows: number, prefix = 'Hospital') =>
  ['name,address,phone', ...names(rows, prefix).map((name, i) => `${name},"${i + 1} Main St, Springfield",555-01${String(i).padStart(2, '0')}`)].join(
    '\n',
  );

const statuses = (report: BatchReport) => report.hospitals.map((h) => h.status);
/** The hospitals the directory holds for one batch, by id. */
const upstreamOf = (sim: Simulator, batchId: string) =>
  sim
    .hospitals()
    .filter((h) => h.creation_batch_id === batchId)
    .sort((a, b) => a.id - b.id);
/** How many POST /hospitals/ the directory received for each name. */
function createsByName(sim: Simulator): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of requestsTo(sim, 'create')) {
    const name = (r.body as { name: string }).name;
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}
const oncePerName = (rows: number, prefix = 'Hospital') => Object.fromEntries(names(rows, prefix).map((name) => [name, 1]));

/** After a successful resume: the directory holds exactly one active hospital per row, with the ids the report shows. */
function expectCompletedUpstream(sim: Simulator, report: BatchReport, rows: number) {
  expect(report).toMatchObject({ status: 'completed', batch_activated: true, processed_hospitals: rows, failed_hospitals: 0, error: null });
  expect(statuses(report)).toEqual(Array(rows).fill('created_and_activated'));
  const upstream = upstreamOf(sim, report.batch_id);
  expect(upstream.map((h) => h.name).sort()).toEqual(report.hospitals.map((h) => h.name).sort());
  expect(upstream.every((h) => h.active)).toBe(true);
  expect(upstream.map((h) => h.id)).toEqual(report.hospitals.map((h) => h.hospital_id).sort((a, b) => a! - b!));
}

/** The batch's counters (list and report) agree with its rows: created ones, and failed or unknown ones. */
function expectCountsMatchRows(summary: ReturnType<typeof toSummary>, report: BatchReport) {
  const rows = {
    processed_hospitals: report.hospitals.filter((h) => h.status === 'created' || h.status === 'created_and_activated').length,
    failed_hospitals: report.hospitals.filter((h) => h.status === 'failed' || h.status === 'unknown').length,
  };
  expect({ processed_hospitals: summary.processed_hospitals, failed_hospitals: summary.failed_hospitals }).toEqual(rows);
  expect({ processed_hospitals: report.processed_hospitals, failed_hospitals: report.failed_hospitals }).toEqual(rows);
}

// ---- the built server as a child process -------------------------------------------------

function form(content: string, filename = 'hospitals.csv'): FormData {
  const body = new FormData();
  body.append('file', new Blob([content], { type: 'text/csv' }), filename);
  return body;
}

async function call<T = BatchReport>(service: ServiceProcess, method: string, path: string) {
  const res = await fetch(`${service.url}${path}`, { method });
  return { status: res.status, headers: res.headers, body: (await res.json()) as T };
}

/** The history as a user reads it: the list, and the one batch it must hold. */
async function theOnlyBatch(service: ServiceProcess) {
  const list = await call<{ batches: ReturnType<typeof toSummary>[] }>(service, 'GET', '/batches');
  expect(list.status).toBe(200);
  expect(list.body.batches).toHaveLength(1);
  const batchId = list.body.batches[0]!.batch_id;
  const report = await call(service, 'GET', `/batches/${batchId}`);
  expect(report.status).toBe(200);
  return { summary: list.body.batches[0]!, report: report.body };
}

/** The create the directory is now inside its delay for (body read, no answer yet). */
const createInFlight = (sim: Simulator, nth: number) => {
  const create = requestsTo(sim, 'create')[nth - 1];
  return create !== undefined && create.body !== null && create.status === null;
};

describe('when the process is killed (SIGKILL) mid-batch, then a new process on the same database makes it resumable', () => {
  let dir: ReturnType<typeof tempDir>;
  let sim: Simulator | undefined;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    await killAllServices();
    await sim?.close();
    sim = undefined;
    dir.remove();
  });

  /**
   * Uploads `rows` rows to a fresh service, SIGKILLs it once `killWhen` holds, starts a new
   * process on the same database and returns it with what the history shows.
   */
  async function crashAt(rows: number, what: string, killWhen: () => boolean, extraEnv: Record<string, string> = {}) {
    const dbPath = join(dir.path, 'history.db');
    // The resume by hand (automatic resume has its own tests in instances.test.ts). On
    // PostgreSQL the new process may not call a batch orphaned before the dead one's lease
    // runs out (another instance could be running it): keep the lease short.
    const env = { AUTO_RESUME: 'false', BATCH_LEASE_MS: '1000', ...extraEnv };
    const first = await startService({ directoryUrl: sim!.url, dbPath, env });
    const upload = fetch(`${first.url}/hospitals/bulk`, { method: 'POST', body: form(csv(rows)) }).then(
      (res) => ({ status: res.status }),
      (error: unknown) => ({ error: String((error as { message?: unknown } | null)?.message ?? error) }),
    );
    await waitUntil(what, killWhen);
    const killed = await first.kill('SIGKILL');
    expect(killed).toEqual({ code: null, signal: 'SIGKILL' });
    // The client never got an answer: the connection died with the process.
    // (fetch's TypeError is not from jest's realm, so instanceof would not do: compare the message.)
    expect(await upload).toEqual({ error: 'fetch failed' });

    const second = await startService({ directoryUrl: sim!.url, dbPath, env });
    await waitUntil('the batch is marked interrupted', async () => (await theOnlyBatch(second)).summary.status === 'interrupted');
    const { summary, report } = await theOnlyBatch(second);
    expect(summary).toMatchObject({ status: 'interrupted', total_hospitals: rows, batch_activated: false });
    expect(report.error).toBe(`The service stopped while this batch was running. Resume it with POST /batches/${report.batch_id}/resume.`);
    expectCountsMatchRows(summary, report);
    // Start-up recovery says so in the log, naming the batch.
    expect(second.logs).toContainEqual(expect.objectContaining({ level: 'warn', batch_id: report.batch_id, message: expect.stringMatching(/interrupted/) }));
    return { service: second, report };
  }

  test('when killed before the first create (the directory still cold), then the batch is interrupted with every row pending, and resume creates each row once and activates', async () => {
    sim = await startSimulator({ coldStartMs: 1_000 });
    const env = { UPSTREAM_TIMEOUT_MS: '5000', WARMUP_TIMEOUT_MS: '10000' };

    const { service, report } = await crashAt(3, 'the directory received the wake-up GET /', () => requestsTo(sim!, 'health').length > 0, env);

    expect(requestsTo(sim, 'create')).toHaveLength(0);
    expect(report.hospitals.map(({ status, hospital_id, attempts }) => ({ status, hospital_id, attempts }))).toEqual(
      Array(3).fill({ status: 'pending', hospital_id: null, attempts: 0 }),
    );

    const resumed = await call(service, 'POST', `/batches/${report.batch_id}/resume`);

    expect(resumed.status).toBe(200);
    expectCompletedUpstream(sim, resumed.body, 3);
    expect(resumed.body.batch_id).toBe(report.batch_id);
    expect(resumed.body.notice).toBeNull();
    expect(createsByName(sim)).toEqual(oncePerName(3));
    expect((await call(service, 'GET', `/batches/${report.batch_id}`)).body).toEqual(resumed.body);
  });

  test('when killed while the 2nd create is in flight and the directory still stores it, then that row is unknown, and resume adopts it instead of creating it again', async () => {
    sim = await startSimulator({ createDelayMs: 400 });

    const { service, report } = await crashAt(3, 'the 2nd create is inside its delay', () => createInFlight(sim!, 2));

    expect(report.hospitals).toMatchObject([
      { row: 1, status: 'created', hospital_id: expect.any(Number), attempts: 1 },
      {
        row: 2,
        status: 'unknown',
        hospital_id: null,
        error_message: 'The service stopped while this row was being sent; resume the batch to check whether it was created.',
      },
      { row: 3, status: 'pending', hospital_id: null, attempts: 0 },
    ]);
    // (crashAt checked the counters too: 1 created, 1 failed-or-unknown, in the list and the report.)
    const firstId = report.hospitals[0]!.hospital_id;
    // The directory finishes the create nobody is waiting for any more.
    await waitUntil('the directory stored the 2nd hospital', () => upstreamOf(sim!, report.batch_id).length === 2);
    const orphanId = upstreamOf(sim, report.batch_id).find((h) => h.name === 'Hospital 2')!.id;

    const resumed = await call(service, 'POST', `/batches/${report.batch_id}/resume`);

    expect(resumed.status).toBe(200);
    expectCompletedUpstream(sim, resumed.body, 3);
    expect(resumed.body.hospitals[0]!.hospital_id).toBe(firstId);
    expect(resumed.body.hospitals[1]!.hospital_id).toBe(orphanId);
    expect(createsByName(sim)).toEqual(oncePerName(3));
    expect(resumed.body.notice).toBe('1 row(s) had been created by an earlier attempt whose answer was lost; they were adopted, not created again.');
  });

  test('when killed after the directory activated the batch but before we heard, then resume reports it completed without a second successful activation', async () => {
    sim = await startSimulator();
    sim.inject('activate', { kind: 'hang', store: true });

    const { service, report } = await crashAt(3, 'the directory activated the batch (answer never sent)', () => {
      const held = sim!.hospitals();
      return requestsTo(sim!, 'activate').length === 1 && held.length === 3 && held.every((h) => h.active);
    });

    expect(report).toMatchObject({ processed_hospitals: 3, batch_activated: false });
    expect(statuses(report)).toEqual(['created', 'created', 'created']);
    const ids = report.hospitals.map((h) => h.hospital_id);
    expect(ids).toEqual(upstreamOf(sim, report.batch_id).map((h) => h.id));

    const resumed = await call(service, 'POST', `/batches/${report.batch_id}/resume`);

    expect(resumed.status).toBe(200);
    expectCompletedUpstream(sim, resumed.body, 3);
    expect(resumed.body.hospitals.map((h) => h.hospital_id)).toEqual(ids);
    expect(requestsTo(sim, 'activate').filter((r) => r.status === 200)).toEqual([]);
    expect(createsByName(sim)).toEqual(oncePerName(3));
  });
});

describe('when the process is asked to stop (SIGTERM) mid-batch', () => {
  let dir: ReturnType<typeof tempDir>;
  let sim: Simulator | undefined;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    await killAllServices();
    await sim?.close();
    sim = undefined;
    dir.remove();
  });

  /** POSTs a CSV on a connection of its own (agent: false): the status, or the connection error. */
  async function uploadOnNewConnection(url: string, content: string): Promise<{ status: number } | { error: string }> {
    // Let fetch's own classes build the multipart body, then send it with node:http.
    const prepared = new Request(`${url}/hospitals/bulk`, { method: 'POST', body: form(content) });
    const body = Buffer.from(await prepared.arrayBuffer());
    return new Promise((resolve) => {
      const req = http.request(
        `${url}/hospitals/bulk`,
        { method: 'POST', agent: false, headers: { 'content-type': prepared.headers.get('content-type')!, 'content-length': body.length } },
        (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0 });
        },
      );
      req.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
      req.end(body);
    });
  }

  test('when SIGTERM arrives while an upload is still arriving, then once in it is refused with 503, nothing is recorded or sent upstream, and the process exits 0', async () => {
    sim = await startSimulator();
    const dbPath = join(dir.path, 'history.db');
    const service = await startService({ directoryUrl: sim.url, dbPath });
    const prepared = new Request(`${service.url}/hospitals/bulk`, { method: 'POST', body: form(csv(3)) });
    const body = Buffer.from(await prepared.arrayBuffer());
    const half = Math.floor(body.length / 2);
    const answer = new Promise<{ status: number; retryAfter: string | undefined; body: string }>((resolve, reject) => {
      const req = http.request(
        `${service.url}/hospitals/bulk`,
        { method: 'POST', agent: false, headers: { 'content-type': prepared.headers.get('content-type')!, 'content-length': body.length } },
        (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body: text }));
        },
      );
      req.on('error', reject);
      req.write(body.subarray(0, half));
      // The request was let in before the signal: the rest of the file follows it.
      setTimeout(() => {
        void service.kill('SIGTERM');
        waitUntil('the service logs that it is shutting down', () =>
          service.logs.some((line) => typeof line === 'object' && String(line.message).startsWith('shutting down')),
        ).then(() => req.end(body.subarray(half)), reject);
      }, 300);
    });

    const res = await answer;
    expect(res.status).toBe(503);
    expect(res.retryAfter).toBe('30');
    expect(JSON.parse(res.body)).toMatchObject({ status: 503, detail: 'The service is restarting and takes no new work; send the request again in a minute.' });
    expect(await service.exited).toEqual({ code: 0, signal: null });
    // Nothing reached the directory, not even a wake-up, and the history holds nothing.
    expect(sim.requests).toEqual([]);
    const restarted = await startService({ directoryUrl: sim.url, dbPath });
    expect((await call<{ batches: unknown[] }>(restarted, 'GET', '/batches')).body.batches).toEqual([]);
  });

  test('when SIGTERM arrives during the 2nd create, then the row in flight finishes, the client gets the interrupted report, the process exits 0, and resume completes the batch', async () => {
    sim = await startSimulator({ createDelayMs: 300 });
    const dbPath = join(dir.path, 'history.db');
    const env = { SHUTDOWN_GRACE_MS: '3000', AUTO_RESUME: 'false' };
    const service = await startService({ directoryUrl: sim.url, dbPath, env });
    const answer = fetch(`${service.url}/hospitals/bulk`, { method: 'POST', body: form(csv(5)) }).then(async (res) => ({
      status: res.status,
      body: (await res.json()) as BatchReport,
    }));
    await waitUntil('the 2nd create is in flight', () => createInFlight(sim!, 2));

    const exited = service.kill('SIGTERM');
    await waitUntil('the service logs that it is shutting down', () =>
      service.logs.some((line) => typeof line === 'object' && String(line.message).startsWith('shutting down')),
    );
    const late = await uploadOnNewConnection(service.url, csv(2, 'Late'));
    const res = await answer;

    // No new work after SIGTERM: the listener is closed (connection refused) or the request is refused.
    if ('status' in late) expect(late.status).toBe(503);
    else expect(late.error).toMatch(/ECONNREFUSED|ECONNRESET|EPIPE/);
    expect(res.status).toBe(200);
    const batchId = res.body.batch_id;
    expect(res.body).toMatchObject({
      status: 'interrupted',
      processed_hospitals: 2,
      batch_activated: false,
      error: `The service shut down during this batch. Resume it with POST /batches/${batchId}/resume.`,
    });
    expect(statuses(res.body)).toEqual(['created', 'created', 'pending', 'pending', 'pending']);
    expect(res.body.hospitals.slice(0, 2).map((h) => h.hospital_id)).toEqual(upstreamOf(sim, batchId).map((h) => h.id));
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(service.logs).toContainEqual(expect.objectContaining({ message: 'stopped' }));
    // The directory saw two creates (the row in flight finished) and nothing of the late upload.
    expect(createsByName(sim)).toEqual(oncePerName(2));

    const restarted = await startService({ directoryUrl: sim.url, dbPath, env });
    const { summary, report } = await theOnlyBatch(restarted);
    expect(report).toEqual(res.body);
    expectCountsMatchRows(summary, report);

    const resumed = await call(restarted, 'POST', `/batches/${batchId}/resume`);

    expect(resumed.status).toBe(200);
    expectCompletedUpstream(sim, resumed.body, 5);
    expect(resumed.body.hospitals.slice(0, 2).map((h) => h.hospital_id)).toEqual(res.body.hospitals.slice(0, 2).map((h) => h.hospital_id));
    expect(createsByName(sim)).toEqual(oncePerName(5));
  });
});

// ---- the real app in-process ---------------------------------------------------------------

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

function s(): Stack {
  if (!stack) throw new Error('stack not started');
  return stack;
}
const upload = (content: string, key?: string) => {
  const req = request(s().app).post('/hospitals/bulk');
  if (key !== undefined) req.set('Idempotency-Key', key);
  return req.attach('file', Buffer.from(content), 'hospitals.csv');
};
const resume = (id: string) => request(s().app).post(`/batches/${id}/resume`);
const rollback = (id: string) => request(s().app).post(`/batches/${id}/rollback`);
const stored = async (id: string) => (await request(s().app).get(`/batches/${id}`)).body as BatchReport;

describe('circuit breaker', () => {
  const TIMEOUT_MS = 100;
  const ATTEMPTS = 2;
  const THRESHOLD = 3;

  test('when three rows in a row cannot reach the directory, then the batch stops at once with the rest pending, and resume completes it once the directory is back', async () => {
    stack = await startStack({
      env: {
        UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS),
        UPSTREAM_MAX_ATTEMPTS: String(ATTEMPTS),
        CIRCUIT_FAILURE_THRESHOLD: String(THRESHOLD),
        UPSTREAM_SETTLE_MS: '0',
      },
    });
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'hang' }, THRESHOLD * ATTEMPTS); // rows 2–4, every attempt

    const res = await upload(csv(8));

    // It stopped at once: the directory saw row 1's create and the two attempts of rows
    // 2–4 (each round of them, then each re-sent once found absent), and nothing of rows
    // 5–8 (sending them blind would have cost 8 × 2 timeouts).
    const [first, ...failing] = names(4);
    const sent = requestsTo(stack.sim, 'create').map((r) => (r.body as { name: string }).name);
    expect(sent).toEqual([first, ...failing, ...failing]);

    expect(res.status).toBe(200);
    const batchId = res.body.batch_id as string;
    expect(res.body).toMatchObject({ status: 'failed', processed_hospitals: 1, failed_hospitals: 3, batch_activated: false });
    expect(res.body.error).toBe(
      `Stopped after 3 consecutive rows failed to reach the directory; 4 row(s) were not attempted. Resume with POST /batches/${batchId}/resume.`,
    );
    expect(statuses(res.body)).toEqual(['created', 'failed', 'failed', 'failed', 'pending', 'pending', 'pending', 'pending']);
    for (const row of res.body.hospitals.slice(1, 4)) {
      expect(row).toMatchObject({ hospital_id: null, attempts: ATTEMPTS, error_message: expect.stringMatching(/^Not created after 2 attempt\(s\): /) });
    }
    for (const row of res.body.hospitals.slice(4)) {
      expect(row).toMatchObject({
        hospital_id: null,
        attempts: 0,
        error_message: 'Not sent: 3 rows in a row could not reach the directory, so the batch stopped. Resume it when the directory is back.',
      });
    }
    expect(await stored(batchId)).toEqual(res.body);
    // Row 1 once, rows 2–4 twice each, rows 5–8 never.
    expect(createsByName(stack.sim)).toEqual({ 'Hospital 1': 1, 'Hospital 2': 2, 'Hospital 3': 2, 'Hospital 4': 2 });
    expect(upstreamOf(stack.sim, batchId).map((h) => h.name)).toEqual(['Hospital 1']);
    expect(requestsTo(stack.sim, 'activate')).toHaveLength(0);

    // The directory is back: every injected fault has been used up.
    const resumed = await resume(batchId);

    expect(resumed.status).toBe(200);
    expectCompletedUpstream(stack.sim, resumed.body, 8);
    expect(resumed.body.hospitals[0].hospital_id).toBe(res.body.hospitals[0].hospital_id);
    expect(createsByName(stack.sim)).toEqual({ ...oncePerName(8), 'Hospital 2': 3, 'Hospital 3': 3, 'Hospital 4': 3 });
    expect(stack.sim.hospitals()).toHaveLength(8);
  });
});

describe('when the directory forgot the batch (it slept and lost its memory)', () => {
  test('when a failed batch is resumed after the directory slept, then the forgotten rows are created again under the same batch id and the notice says so', async () => {
    stack = await startStack();
    stack.sim.inject('create', { kind: 'pass' }, 2);
    // Every attempt (FAST_ENV: 3) answers 503: a failure a resume may heal (a rejected row would wait for an edit).
    stack.sim.inject('create', { kind: 'status', status: 503 }, 3);
    const res = await upload(csv(3));
    expect(res.body).toMatchObject({ status: 'failed', processed_hospitals: 2, failed_hospitals: 1 });
    expect(statuses(res.body)).toEqual(['created', 'created', 'failed']);
    const batchId = res.body.batch_id as string;
    expect(upstreamOf(stack.sim, batchId)).toHaveLength(2);

    stack.sim.sleep();
    expect(stack.sim.hospitals()).toEqual([]);
    const resumed = await resume(batchId);

    expect(resumed.status).toBe(200);
    expect(resumed.body.batch_id).toBe(batchId);
    expectCompletedUpstream(stack.sim, resumed.body, 3);
    expect(resumed.body.notice).toBe(
      'The directory no longer held 2 hospital(s) of this batch (it forgets everything when it sleeps); they were created again under the same batch id.',
    );
    expect(createsByName(stack.sim)).toEqual({ 'Hospital 1': 2, 'Hospital 2': 2, 'Hospital 3': 4 });
    expect(await stored(batchId)).toEqual(resumed.body);
  });
});

describe('Idempotency-Key', () => {
  test('when the same key and file are sent twice, then the second answer replays the stored report and the directory sees each row once; a different file is 422; a restart keeps the key', async () => {
    stack = await startStack();

    const first = await upload(csv(3), 'key-1');
    const second = await upload(csv(3), 'key-1');

    expect(first.status).toBe(200);
    expect(first.body.status).toBe('completed');
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(second.status).toBe(200);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toEqual(first.body);
    expect(second.body).toEqual(await stored(first.body.batch_id));
    expect(createsByName(stack.sim)).toEqual(oncePerName(3));
    expect(requestsTo(stack.sim, 'activate')).toHaveLength(1);

    const other = await upload(csv(2, 'Other'), 'key-1');

    expect(other.status).toBe(422);
    expect(other.headers['content-type']).toMatch(PROBLEM_JSON);
    expect(other.body).toMatchObject({ status: 422, batch_id: first.body.batch_id });
    expect(other.body.detail).toBe(
      `This Idempotency-Key was already used for a different file (batch ${first.body.batch_id}). Use a new key for a new file.`,
    );

    await stack.restart();
    const afterRestart = await upload(csv(3), 'key-1');

    expect(afterRestart.status).toBe(200);
    expect(afterRestart.headers['idempotent-replayed']).toBe('true');
    expect(afterRestart.body).toEqual(first.body);
    expect(createsByName(stack.sim)).toEqual(oncePerName(3));
    const history = await request(stack.app).get('/batches');
    expect(history.body.batches.map((b: { batch_id: string }) => b.batch_id)).toEqual([first.body.batch_id]);
  });

  test('when the same key arrives while the first upload is still processing, then 409 points to the batch and nothing is sent twice', async () => {
    stack = await startStack({ sim: { coldStartMs: 300 } });

    const pending = upload(csv(2), 'slow-key').then((res) => res);
    const batchId = await waitUntil('the first upload is recorded', async () => {
      const list = await request(s().app).get('/batches');
      return list.body.batches[0]?.batch_id as string | undefined;
    });
    const again = await upload(csv(2), 'slow-key');
    const first = await pending;

    expect(again.status).toBe(409);
    expect(again.headers['content-type']).toMatch(PROBLEM_JSON);
    expect(again.headers.location).toBe(`/batches/${batchId}`);
    expect(again.body).toMatchObject({ status: 409, batch_id: batchId });
    expect(again.body.detail).toMatch(/still being processed/);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ batch_id: batchId, status: 'completed' });
    expect(createsByName(stack.sim)).toEqual(oncePerName(2));
    expect(upstreamOf(stack.sim, batchId)).toHaveLength(2);
  });

  test('when the key is 300 characters long, then 400 and nothing is recorded or sent', async () => {
    stack = await startStack();

    const res = await upload(csv(1), 'k'.repeat(300));

    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toMatch(PROBLEM_JSON);
    expect(res.body.detail).toBe('Idempotency-Key must be 1 to 255 visible ASCII characters.');
    expect(stack.sim.requests).toEqual([]);
    expect((await request(stack.app).get('/batches')).body.batches).toEqual([]);
  });
});

describe('rollback', () => {
  test('when a failed batch is rolled back, then every row is deleted upstream and in the history, and it can be neither resumed nor rolled back again', async () => {
    stack = await startStack();
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'status', status: 400, body: { detail: 'Refused for a test' } });
    const failed = await upload(csv(3));
    expect(failed.body).toMatchObject({ status: 'failed', processed_hospitals: 2 });
    const batchId = failed.body.batch_id as string;
    expect(upstreamOf(stack.sim, batchId)).toHaveLength(2);

    const res = await rollback(batchId);

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ batch_id: batchId, status: 'rolled_back', batch_activated: false, processed_hospitals: 0 });
    expect(statuses(res.body)).toEqual(['deleted', 'deleted', 'deleted']);
    expect(await stored(batchId)).toEqual(res.body);
    expect(upstreamOf(stack.sim, batchId)).toEqual([]);
    expect(requestsTo(stack.sim, 'deleteBatch')).toHaveLength(1);

    const resumed = await resume(batchId);
    const again = await rollback(batchId);

    expect(resumed.status).toBe(409);
    expect(resumed.headers['content-type']).toMatch(PROBLEM_JSON);
    expect(resumed.body).toMatchObject({ batch_status: 'rolled_back', batch_id: batchId });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ batch_status: 'rolled_back', batch_id: batchId });
    expect(requestsTo(stack.sim, 'create')).toHaveLength(3);
    expect(requestsTo(stack.sim, 'deleteBatch')).toHaveLength(1);

    const unknown = await rollback(UNKNOWN_ID);
    const malformed = await rollback('12345');

    expect(unknown.status).toBe(404);
    expect(unknown.body.detail).toBe(`No batch with id ${UNKNOWN_ID}.`);
    expect(malformed.status).toBe(400);
    expect(malformed.body.detail).toBe('The batch id must be a UUID.');
  });

  test('when ON_FAILURE=rollback and a row is refused, then the upload answer already says rolled_back and the directory holds nothing of the batch', async () => {
    stack = await startStack({ env: { ON_FAILURE: 'rollback' } });
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'status', status: 400, body: { detail: 'Refused for a test' } });

    const res = await upload(csv(3));

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'rolled_back', batch_activated: false });
    expect(res.body.batch_id).toMatch(UUID);
    expect(statuses(res.body)).toEqual(['deleted', 'deleted', 'deleted']);
    expect(await stored(res.body.batch_id)).toEqual(res.body);
    expect(requestsTo(stack.sim, 'create')).toHaveLength(3);
    expect(requestsTo(stack.sim, 'deleteBatch')).toHaveLength(1);
    expect(requestsTo(stack.sim, 'activate')).toHaveLength(0);
    expect(stack.sim.hospitals()).toEqual([]);
  });
});

describe('resume refusals', () => {
  test('when a completed batch is resumed, then 409 names its status and nothing is sent; an unknown id is 404', async () => {
    stack = await startStack();
    const done = await upload(csv(2));
    expect(done.body.status).toBe('completed');
    const sent = stack.sim.requests.length;

    const res = await resume(done.body.batch_id);
    const unknown = await resume(UNKNOWN_ID);

    expect(res.status).toBe(409);
    expect(res.headers['content-type']).toMatch(PROBLEM_JSON);
    expect(res.body).toMatchObject({ status: 409, batch_id: done.body.batch_id, batch_status: 'completed' });
    expect(res.body.detail).toBe('The batch is completed; only a failed, interrupted or cancelled batch can be resumed.');
    expect(unknown.status).toBe(404);
    expect(unknown.body.detail).toBe(`No batch with id ${UNKNOWN_ID}.`);
    expect(stack.sim.requests).toHaveLength(sent);
    expect(await stored(done.body.batch_id)).toEqual(done.body);
  });
});
