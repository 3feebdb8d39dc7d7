/**
 * Files bigger than one directory batch (issue 16): with MAX_ROWS raised, a file of N rows is
 * one upload, created in the directory as ⌈N/20⌉ batches of at most 20 rows in file order,
 * and nothing is activated until every row of every one exists. The real app against the
 * directory simulator over real HTTP; each test checks the report a user gets and what the
 * directory holds and received.
 */
import { join } from 'node:path';
import request from 'supertest';
import { progressOf } from '../src/bulk/progress.js';
import { loadConfig } from '../src/config.js';
import { queueWaitMs } from '../src/directory/limiter.js';
import type { BatchReport } from '../src/http/presenter.js';
import type { Simulator } from '../simulator/simulator.js';
import { FAST_ENV, parseSse, requestsTo, startSimulator, startStack, tempDir, type Stack } from './helpers.js';
import { killAllServices, startService, waitUntil, type ServiceProcess } from './service-process.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// The directory's real 30 creates per window, with the window shortened so 45 rows take a second, not two minutes.
const BIG = { MAX_ROWS: '1000', UPSTREAM_RATE_WINDOW_MS: '300' };

const names = (rows: number) => Array.from({ length: rows }, (_, i) => `Hospital ${i + 1}`);
const csv = (rows: number) =>
  ['name,address,phone', ...names(rows).map((name, i) => `${name},${i + 1} Main St,555-${String(i).padStart(4, '0')}`)].join('\n');

let stack: Stack;
afterEach(async () => stack?.close());

const upload = (rows: number, headers: Record<string, string> = {}) => {
  const req = request(stack.app).post('/hospitals/bulk');
  for (const [name, value] of Object.entries(headers)) void req.set(name, value);
  return req.attach('file', Buffer.from(csv(rows)), 'hospitals.csv');
};

/** The directory batches the directory received creates for, in the order it first saw them, with their hospitals. */
function upstreamBatches(sim: Simulator): { id: string; names: string[]; active: boolean[] }[] {
  const ids = [...new Set(requestsTo(sim, 'create').map((r) => (r.body as { creation_batch_id: string }).creation_batch_id))];
  return ids.map((id) => {
    const held = sim
      .hospitals()
      .filter((h) => h.creation_batch_id === id)
      .sort((a, b) => a.id - b.id);
    return { id, names: held.map((h) => h.name), active: held.map((h) => h.active) };
  });
}

/** The rows of a report's directory batch k (1-based), as ranges a person reads. */
const expectedParts = (report: BatchReport, activated: boolean[]) => [
  { id: report.batch_id, first_row: 1, last_row: 20, activated: activated[0] },
  { id: expect.stringMatching(UUID), first_row: 21, last_row: 40, activated: activated[1] },
  { id: expect.stringMatching(UUID), first_row: 41, last_row: 45, activated: activated[2] },
];

/** 45 rows, three directory batches, every hospital active exactly once, each in its own directory batch. */
function expectAllActive(report: BatchReport, sim: Simulator = stack.sim) {
  expect(report).toMatchObject({ status: 'completed', batch_activated: true, total_hospitals: 45, processed_hospitals: 45, failed_hospitals: 0, error: null });
  expect(report.directory_batches).toEqual(expectedParts(report, [true, true, true]));
  expect(report.hospitals.map((h) => [h.row, h.name, h.status])).toEqual(names(45).map((name, i) => [i + 1, name, 'created_and_activated']));
  const parts = report.directory_batches!;
  expect(new Set(parts.map((p) => p.id)).size).toBe(3);
  for (const h of report.hospitals) expect(h.directory_batch_id).toBe(parts[Math.floor((h.row - 1) / 20)]!.id);
  // The directory holds exactly these 45, in the batches the report names, all active.
  const held = parts.map((p) => sim.hospitals().filter((h) => h.creation_batch_id === p.id));
  expect(held.map((hs) => hs.map((h) => h.name).sort())).toEqual([names(20).sort(), names(40).slice(20).sort(), names(45).slice(40).sort()]);
  expect(held.flat().every((h) => h.active)).toBe(true);
  expect(sim.hospitals()).toHaveLength(45);
  expect(held.flat().map((h) => h.id).sort((a, b) => a - b)).toEqual(report.hospitals.map((h) => h.hospital_id).sort((a, b) => a! - b!));
}

describe('a file of more than 20 rows', () => {
  test('when 45 rows are uploaded row by row under the directory rate limits, then three directory batches of 20, 20 and 5 are created in file order, each activated only after the last create, with no 429', async () => {
    stack = await startStack({ sim: { rateLimits: { windowMs: 300 } }, env: BIG });

    const res = await upload(45);

    expect(res.status).toBe(200);
    const report = res.body as BatchReport;
    expectAllActive(report);
    expect(stack.sim.stats().count429).toBe(0);
    // File order: the directory received the creates row by row, batch after batch.
    expect(requestsTo(stack.sim, 'create').map((r) => (r.body as { name: string }).name)).toEqual(names(45));
    expect(upstreamBatches(stack.sim).map((b) => b.id)).toEqual(report.directory_batches!.map((p) => p.id));
    // All or nothing: the first activation went out after the last create was answered.
    const lastCreate = Math.max(...requestsTo(stack.sim, 'create').map((r) => r.receivedAt + r.durationMs!));
    const activations = requestsTo(stack.sim, 'activate');
    expect(activations.map((r) => r.path)).toEqual(report.directory_batches!.map((p) => `/hospitals/batch/${p.id}/activate`));
    expect(Math.min(...activations.map((r) => r.receivedAt))).toBeGreaterThanOrEqual(lastCreate);

    // The history says the same, and the results download names each row's directory batch.
    const stored = await request(stack.app).get(`/batches/${report.batch_id}`);
    expect(stored.body).toEqual(report);
    const results = await request(stack.app).get(`/batches/${report.batch_id}/results.csv`);
    const lines = results.text.replace(/^\uFEFF/, '').trim().split('\r\n');
    expect(lines[0]).toBe('row,name,address,phone,hospital_id,directory_batch_id,status,error_message');
    expect(lines).toHaveLength(46);
    expect(lines[21]).toBe(`21,Hospital 21,21 Main St,555-0020,${report.hospitals[20]!.hospital_id},${report.directory_batches![1]!.id},created_and_activated,`);
  });

  test('when its events are followed, then each directory batch announces its activation, and the upload is activated once all are', async () => {
    stack = await startStack({ env: BIG });
    const report = (await upload(45)).body as BatchReport;

    const events = parseSse((await request(stack.app).get(`/batches/${report.batch_id}/events`)).text);

    const batchEvents = events.filter((e) => e.event === 'batch').map((e) => e.data);
    expect(batchEvents).toEqual([
      { status: 'processing', error: null },
      ...report.directory_batches!.map((p) => ({ status: 'processing', batch_activated: false, directory_batch_id: p.id, directory_batch_activated: true })),
      { status: 'processing', batch_activated: true },
      { status: 'completed', error: null },
    ]);
    expect(events.filter((e) => e.event === 'row').map((e) => e.data.row)).toEqual(Array.from({ length: 45 }, (_, i) => i + 1));
    expect(events.at(-1)!.event).toBe('report');
  });

  test('when 45 rows are uploaded at UPSTREAM_CONCURRENCY=20 under the rate limits, then no directory batch ever exceeds 20 and all three are activated', async () => {
    stack = await startStack({ sim: { rateLimits: { windowMs: 300 }, createDelayMs: 20 }, env: { ...BIG, UPSTREAM_CONCURRENCY: '20' } });

    const res = await upload(45);

    expect(res.status).toBe(200);
    expectAllActive(res.body);
    expect(stack.sim.stats().count429).toBe(0);
    expect(stack.sim.stats().maxInFlightCreates).toBeLessThanOrEqual(20);
    expect(requestsTo(stack.sim, 'create').every((r) => r.status === 200)).toBe(true);
  });

  test('when a row of the second directory batch fails, then nothing is activated anywhere, and a resume finishes all three', async () => {
    stack = await startStack({ env: BIG });
    stack.sim.inject('create', { kind: 'pass' }, 25);
    // A 429 is retried by the same row after the window (src/directory/retry.ts), up to 10
    // times: the 11th gives row 26 up, not created.
    stack.sim.inject('create', { kind: 'status', status: 429, body: { error: 'Rate limit exceeded: 30 per 1 minute' } }, 11);

    const failed = (await upload(45)).body as BatchReport;

    expect(failed).toMatchObject({ status: 'failed', batch_activated: false, processed_hospitals: 44, failed_hospitals: 1 });
    expect(failed.error).toBe('1 of 45 rows were not created; the batch was not activated.');
    expect(failed.hospitals[25]).toMatchObject({ row: 26, status: 'failed', hospital_id: null });
    expect(failed.directory_batches).toEqual(expectedParts(failed, [false, false, false]));
    expect(requestsTo(stack.sim, 'activate')).toHaveLength(0);
    expect(stack.sim.hospitals().some((h) => h.active)).toBe(false);
    expect(stack.sim.hospitals()).toHaveLength(44);

    const resumed = await request(stack.app).post(`/batches/${failed.batch_id}/resume`);

    expect(resumed.status).toBe(200);
    expectAllActive(resumed.body);
    expect(resumed.body.directory_batches).toEqual(failed.directory_batches!.map((p) => ({ ...p, activated: true })));
  });

  test('when the second directory batch cannot be activated, then the report says which are active, and a resume activates only the rest', async () => {
    stack = await startStack({ env: BIG });
    stack.sim.inject('activate', { kind: 'pass' });
    stack.sim.inject('activate', { kind: 'status', status: 404, body: { detail: 'No hospitals found with the specified batch ID' } });

    const failed = (await upload(45)).body as BatchReport;

    expect(failed).toMatchObject({ status: 'failed', batch_activated: false, processed_hospitals: 45, failed_hospitals: 0 });
    expect(failed.directory_batches).toEqual(expectedParts(failed, [true, false, false]));
    expect(failed.error).toMatch(/^Directory batch 2 of 3 \(rows 21–40\) was not activated: .+ \(directory batch 1 is active; resume the batch to activate the rest\)\.$/);
    expect(failed.hospitals.map((h) => h.status)).toEqual([...Array(20).fill('created_and_activated'), ...Array(25).fill('created')]);
    const [first, second, third] = failed.directory_batches!;
    const activeIn = (id: string) => stack.sim.hospitals().filter((h) => h.creation_batch_id === id && h.active).length;
    expect([activeIn(first!.id), activeIn(second!.id), activeIn(third!.id)]).toEqual([20, 0, 0]);

    const resumed = await request(stack.app).post(`/batches/${failed.batch_id}/resume`);

    expectAllActive(resumed.body);
    const activations = requestsTo(stack.sim, 'activate').map((r) => r.path.split('/')[3]);
    expect(activations).toEqual([first!.id, second!.id, second!.id, third!.id]);
    expect(requestsTo(stack.sim, 'create')).toHaveLength(45);
  });

  test('when the answer to the third activation is lost, then it is verified with a read and not sent again', async () => {
    stack = await startStack({ env: BIG });
    stack.sim.inject('activate', { kind: 'pass' }, 2);
    stack.sim.inject('activate', { kind: 'lose-response' });

    const res = await upload(45);

    expectAllActive(res.body);
    const third = (res.body as BatchReport).directory_batches![2]!.id;
    expect(requestsTo(stack.sim, 'activate').filter((r) => r.path === `/hospitals/batch/${third}/activate`)).toHaveLength(1);
    expect(requestsTo(stack.sim, 'batch').filter((r) => r.path === `/hospitals/batch/${third}`).length).toBeGreaterThanOrEqual(1);
  });

  test('when a completed upload is rolled back, then every one of its directory batches is deleted', async () => {
    stack = await startStack({ env: BIG });
    const report = (await upload(45)).body as BatchReport;

    const res = await request(stack.app).post(`/batches/${report.batch_id}/rollback`);

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'rolled_back', batch_activated: false });
    expect(res.body.hospitals.every((h: { status: string }) => h.status === 'deleted')).toBe(true);
    expect(res.body.directory_batches.map((p: { activated: boolean }) => p.activated)).toEqual([false, false, false]);
    expect(stack.sim.hospitals()).toHaveLength(0);
    expect(requestsTo(stack.sim, 'deleteBatch').map((r) => r.path)).toEqual(report.directory_batches!.map((p) => `/hospitals/batch/${p.id}`));
  });

  test('when the directory refuses to delete the second directory batch, then the first stays deleted in the history and a second rollback deletes the rest', async () => {
    stack = await startStack({ env: BIG });
    const report = (await upload(45)).body as BatchReport;
    stack.sim.inject('deleteBatch', { kind: 'pass' });
    stack.sim.inject('deleteBatch', { kind: 'status', status: 400, body: { detail: 'Refused for a test' } });

    const refused = await request(stack.app).post(`/batches/${report.batch_id}/rollback`);

    expect(refused.status).toBe(503);
    expect(refused.body.detail).toBe(
      'The directory refused the delete: Refused for a test The batch was only partly rolled back: 1 of its 3 directory batches (rows 1–20) were deleted; roll it back again later for the rest.',
    );
    const after = (await request(stack.app).get(`/batches/${report.batch_id}`)).body as BatchReport;
    expect(after.status).toBe('completed');
    expect(after.hospitals.map((h) => h.status)).toEqual([...Array(20).fill('deleted'), ...Array(25).fill('created_and_activated')]);
    expect(after.directory_batches!.map((p) => p.activated)).toEqual([false, true, true]);
    expect(stack.sim.hospitals()).toHaveLength(25);

    const again = await request(stack.app).post(`/batches/${report.batch_id}/rollback`);

    expect(again.body).toMatchObject({ status: 'rolled_back' });
    expect(stack.sim.hospitals()).toHaveLength(0);
  });

  test('when the directory forgot everything before a resume, then each directory batch is created again under its own id', async () => {
    stack = await startStack({ env: BIG });
    stack.sim.inject('create', { kind: 'pass' }, 44);
    stack.sim.inject('create', { kind: 'status', status: 503 }, Number(stack.config.UPSTREAM_MAX_ATTEMPTS));
    const failed = (await upload(45)).body as BatchReport;
    expect(failed.status).toBe('failed');
    stack.sim.reset();

    const resumed = (await request(stack.app).post(`/batches/${failed.batch_id}/resume`)).body as BatchReport;

    expectAllActive(resumed);
    expect(resumed.directory_batches!.map((p) => p.id)).toEqual(failed.directory_batches!.map((p) => p.id));
    expect(resumed.notice).toContain('The directory no longer held 44 hospital(s) of this batch');
  });

  test('when create answers are lost in two directory batches, then each is settled with a read of its own batch and every row exists once', async () => {
    stack = await startStack({ env: { ...BIG, UPSTREAM_CONCURRENCY: '20' }, sim: { createDelayMs: 20 } });
    stack.sim.inject('create', { kind: 'pass' }, 4);
    stack.sim.inject('create', { kind: 'lose-response' });
    stack.sim.inject('create', { kind: 'pass' }, 20);
    stack.sim.inject('create', { kind: 'lose-response' });

    const report = (await upload(45)).body as BatchReport;

    expectAllActive(report);
    const reads = new Set(requestsTo(stack.sim, 'batch').map((r) => r.path));
    expect(reads.size).toBeGreaterThanOrEqual(2);
    for (const path of reads) expect(report.directory_batches!.map((p) => `/hospitals/batch/${p.id}`)).toContain(path);
  });

  test('when the same 45-row file is sent again with its Idempotency-Key, then the same upload answers and nothing is created twice', async () => {
    stack = await startStack({ env: BIG });
    const first = (await upload(45, { 'Idempotency-Key': 'big-file-1' })).body as BatchReport;

    const again = await upload(45, { 'Idempotency-Key': 'big-file-1' });

    expect(again.body.batch_id).toBe(first.batch_id);
    expect(again.body.directory_batches).toEqual(first.directory_batches);
    expect(requestsTo(stack.sim, 'create')).toHaveLength(45);
  });
});

describe('a file of at most 20 rows', () => {
  test('when exactly 20 rows are uploaded, then the report and results download have the shape they always had: one directory batch, the upload id', async () => {
    stack = await startStack({ env: BIG });

    const report = (await upload(20)).body as BatchReport;

    expect(Object.keys(report)).toEqual([
      'batch_id',
      'filename',
      'status',
      'total_hospitals',
      'processed_hospitals',
      'failed_hospitals',
      'batch_activated',
      'created_at',
      'completed_at',
      'created_by',
      'processing_time_seconds',
      'error',
      'notice',
      'hospitals',
      'cancel_requested_at',
      'audit',
    ]);
    expect(Object.keys(report.hospitals[0]!)).toEqual(['row', 'hospital_id', 'name', 'address', 'phone', 'status', 'error_message', 'attempts']);
    expect(report).toMatchObject({ status: 'completed', batch_activated: true, processed_hospitals: 20 });
    expect(upstreamBatches(stack.sim).map((b) => b.id)).toEqual([report.batch_id]);
    const results = await request(stack.app).get(`/batches/${report.batch_id}/results.csv`);
    expect(results.text.replace(/^\uFEFF/, '').split('\r\n')[0]).toBe('row,name,address,phone,hospital_id,status,error_message');
    const batchEvents = parseSse((await request(stack.app).get(`/batches/${report.batch_id}/events`)).text).filter((e) => e.event === 'batch');
    expect(batchEvents.map((e) => e.data)).toEqual([
      { status: 'processing', error: null },
      { status: 'processing', batch_activated: true },
      { status: 'completed', error: null },
    ]);
  });
});

describe('how many rows an upload may have', () => {
  test('when a file has 21 rows and MAX_ROWS is the default 20, then 400 says so and how to go further, and nothing is sent', async () => {
    stack = await startStack();

    const res = await upload(21);

    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([
      {
        row: null,
        line: null,
        column: null,
        message: 'The file has more than 20 data rows; at most 20 are allowed per upload: split the file, or ask an operator to raise MAX_ROWS (up to 1000)',
      },
    ]);
    expect(stack.sim.requests).toHaveLength(0);
  });

  test('when a file of 1,001 rows is sent with MAX_ROWS=1000, then 400 asks to split it, and nothing is sent or recorded', async () => {
    stack = await startStack({ env: BIG });

    const res = await upload(1001);

    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([
      { row: null, line: null, column: null, message: 'The file has more than 1000 data rows; at most 1000 are allowed per upload: split the file' },
    ]);
    expect(stack.sim.requests).toHaveLength(0);
    expect((await request(stack.app).get('/batches')).body.batches).toEqual([]);
  });

  test('when every row of a 1,000-row file has problems, then the answer lists all of them at once', async () => {
    stack = await startStack({ env: BIG });
    const bad = ['name,address,phone', ...Array.from({ length: 1000 }, (_, i) => ` ,  ,${i}`)].join('\n');

    const res = await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(bad), 'hospitals.csv');

    expect(res.status).toBe(400);
    expect(res.body.errors).toHaveLength(2000);
    expect(res.body.detail).toBe('The CSV has 2000 problems; nothing was created.');
    expect(res.body.errors.at(-1)).toMatchObject({ row: 1000, column: 'address' });
    expect(stack.sim.requests).toHaveLength(0);
  });

  test('when MAX_ROWS is set above 1000, then the service refuses to start and names the variable', () => {
    expect(() => loadConfig({ ...FAST_ENV, HOSPITAL_API_BASE_URL: 'http://127.0.0.1:9', MAX_ROWS: '1001' })).toThrow(/MAX_ROWS/);
    expect(loadConfig({ ...FAST_ENV, HOSPITAL_API_BASE_URL: 'http://127.0.0.1:9', MAX_ROWS: '1000' }).MAX_ROWS).toBe(1000);
  });

  test('when a 45-row file is checked with the dry run, then the directory is read once for the duplicate warnings and nothing is created', async () => {
    stack = await startStack({ env: BIG });

    const res = await request(stack.app).post('/hospitals/bulk/validate').attach('file', Buffer.from(csv(45)), 'hospitals.csv');

    expect(res.status).toBe(200);
    expect(res.body.valid).toBe(true);
    expect(res.body.rows ?? res.body.hospitals).toHaveLength(45);
    expect(requestsTo(stack.sim, 'list')).toHaveLength(1);
    expect(requestsTo(stack.sim, 'create')).toHaveLength(0);
  });
});

describe('when the service dies during a big upload, then the next process finishes it (AUTO_RESUME)', () => {
  const dir = tempDir();
  let sim: Simulator | undefined;
  afterEach(async () => {
    await killAllServices();
    await sim?.close();
    sim = undefined;
  });
  afterAll(() => dir.remove());

  /** Uploads 45 rows to a service, SIGKILLs it once `killWhen` holds, and returns a second service on the same history once it finished the upload. */
  async function killAndFinish(name: string, killWhen: () => boolean) {
    const dbPath = join(dir.path, `${name}.db`);
    const env = { ...BIG, BATCH_LEASE_MS: '1000' };
    const first = await startService({ directoryUrl: sim!.url, dbPath, env });
    const body = new FormData();
    body.append('file', new Blob([csv(45)], { type: 'text/csv' }), 'hospitals.csv');
    const accepted = (await (await fetch(`${first.url}/hospitals/bulk`, { method: 'POST', body, headers: { Prefer: 'respond-async' } })).json()) as { batch_id: string };
    await waitUntil(name, killWhen);
    await first.kill('SIGKILL');

    const second: ServiceProcess = await startService({ directoryUrl: sim!.url, dbPath, env });
    const report = async () => (await (await fetch(`${second.url}/batches/${accepted.batch_id}`)).json()) as BatchReport;
    await waitUntil('the second process completed the upload', async () => (await report()).status === 'completed', 15_000);
    return report();
  }

  test('when killed while a create of the second directory batch is in flight, then every row exists once, in its own directory batch, all active', async () => {
    sim = await startSimulator({ createDelayMs: 50 });

    // Rows 21–40 are the second directory batch; the poll sees the 26th or 27th create on the wire.
    const report = await killAndFinish('mid-create', () => requestsTo(sim!, 'create').length >= 26);

    expectAllActive(report, sim);
    expect(report.batch_activated).toBe(true);
  }, 40_000);

  test('when killed after the directory activated the second directory batch but before we heard, then it is verified, not activated again, and the third is activated', async () => {
    sim = await startSimulator();
    sim.inject('activate', { kind: 'pass' });
    sim.inject('activate', { kind: 'hang', store: true });

    const report = await killAndFinish('mid-activation', () => requestsTo(sim!, 'activate').length === 2 && sim!.hospitals().filter((h) => h.active).length === 40);

    expectAllActive(report, sim);
    const [first, second, third] = report.directory_batches!.map((p) => `/hospitals/batch/${p.id}/activate`);
    expect(requestsTo(sim, 'activate').map((r) => r.path)).toEqual([first, second, third]);
    expect(requestsTo(sim, 'create')).toHaveLength(45);
  }, 40_000);
});

describe('progress of a big upload', () => {
  test('when 200 rows are about to start at 30 creates a minute, then the ETA is at least six minutes', () => {
    const now = 1_000_000;
    const idle = { now, freeAt: [], blockedUntil: 0, limit: 30, windowMs: 60_000 };
    // The first 30 leave now; each further 30 a window later: the last 20 after six windows.
    expect([1, 30, 31, 60, 61, 200].map((queued) => queueWaitMs({ ...idle, queued }))).toEqual([0, 0, 60_000, 60_000, 120_000, 360_000]);
    // 10 slots taken a moment ago (free 60 s after their answers), 20 free: the 21st waits for the first of those.
    const busy = { ...idle, freeAt: Array.from({ length: 10 }, (_, i) => now + 50_000 + i) };
    expect([20, 21, 30, 51].map((queued) => queueWaitMs({ ...busy, queued }))).toEqual([0, 50_000, 50_009, 110_000]);
    // A 429 blocks every slot until it ends.
    expect(queueWaitMs({ ...idle, blockedUntil: now + 5_000, queued: 31 })).toBe(65_000);

    const rows = Array.from({ length: 200 }, (_, i) => ({ row: i + 1, status: 'pending' as const }));
    const progress = progressOf({ startedAt: now }, rows, (pending) => queueWaitMs({ ...idle, queued: pending }), now);
    expect(progress).toMatchObject({ done: 0, pending: 200, etaMs: 360_000 });
  });

  test('when 45 rows wait for the directory limit of 30 creates a minute, then the ETA counts the wait for the next window', async () => {
    // The real window: the 31st create must wait a minute after the first.
    stack = await startStack({ env: { MAX_ROWS: '1000', UPSTREAM_RATE_WINDOW_MS: '60000', SHUTDOWN_GRACE_MS: '100' } });
    const accepted = await upload(45, { Prefer: 'respond-async' });
    expect(accepted.status).toBe(202);
    const id = accepted.body.batch_id as string;
    const report = async () => (await request(stack.app).get(`/batches/${id}`)).body as BatchReport;
    await waitUntil('30 rows are created', async () => (await report()).processed_hospitals === 30);

    const { progress } = await report();

    expect(progress).toMatchObject({ done: 30, pending: 15 });
    // 15 rows left take a few milliseconds each, but none can leave before the window moves.
    expect(progress!.eta_seconds).toBeGreaterThanOrEqual(50);
    expect(progress!.eta_seconds).toBeLessThanOrEqual(61);
    expect(requestsTo(stack.sim, 'create')).toHaveLength(30);

    // Stopping the service then does not wait a minute for the window: the upload is interrupted.
    await stack.deps.lifecycle.stop();
    expect(await report()).toMatchObject({ status: 'interrupted', processed_hospitals: 30 });
  });
});
