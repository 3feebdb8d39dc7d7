import { join } from 'node:path';
import request from 'supertest';
import { requestsTo, startSimulator, startStack, tempDir, type Stack } from './helpers.js';
import { killAllServices, startService } from './service-process.js';

const csv = (rows: number, name = (i: number) => `Hospital ${i + 1}`) =>
  ['name,address,phone', ...Array.from({ length: rows }, (_, i) => `${name(i)},${i + 1} Main St,555-0100`)].join('\n');

let stack: Stack;
afterEach(async () => stack?.close());

const upload = (content: string) => request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(content), 'h.csv');

test('when UPSTREAM_CONCURRENCY is 5, then creates overlap but never more than 5 at once, and the report stays in file order', async () => {
  stack = await startStack({ sim: { createDelayMs: 300 }, env: { UPSTREAM_CONCURRENCY: '5' } });

  const res = await upload(csv(20));

  expect(res.body).toMatchObject({ status: 'completed', processed_hospitals: 20, batch_activated: true });
  expect(res.body.hospitals.map((h: { row: number; name: string }) => [h.row, h.name])).toEqual(
    Array.from({ length: 20 }, (_, i) => [i + 1, `Hospital ${i + 1}`]),
  );
  expect(stack.sim.stats().maxInFlightCreates).toBe(5);
  expect(stack.sim.hospitals()).toHaveLength(20);
});

test('when concurrency is 1 (the default), then creates never overlap', async () => {
  stack = await startStack({ sim: { createDelayMs: 10 } });

  await upload(csv(5));

  expect(stack.sim.stats().maxInFlightCreates).toBe(1);
});

test('when two 20-row batches run at once at concurrency 20 under the real 30-per-window limit, then no window sees more than 30 creates and nothing meets a 429', async () => {
  stack = await startStack({
    sim: { createDelayMs: 20, rateLimits: { windowMs: 500 } },
    env: { UPSTREAM_CONCURRENCY: '20', UPSTREAM_RATE_WINDOW_MS: '500' },
  });

  const [a, b] = await Promise.all([upload(csv(20, (i) => `A${i}`)), upload(csv(20, (i) => `B${i}`))]);

  expect(a!.body.status).toBe('completed');
  expect(b!.body.status).toBe('completed');
  expect(stack.sim.stats().count429).toBe(0);
  const times = stack.sim.stats().createTimes;
  expect(times).toHaveLength(40);
  for (const start of times) expect(times.filter((t) => t >= start && t < start + 500).length).toBeLessThanOrEqual(30);
});

test('when the directory refuses one row of a concurrent batch, then that row fails, the others are created, and nothing is activated', async () => {
  stack = await startStack({ sim: { createDelayMs: 10 }, env: { UPSTREAM_CONCURRENCY: '4' } });
  stack.sim.inject('create', { kind: 'pass' }, 2);
  stack.sim.inject('create', { kind: 'status', status: 400, body: { detail: 'Refused' } });

  const res = await upload(csv(8));

  const statuses = res.body.hospitals.map((h: { status: string }) => h.status);
  expect(res.body).toMatchObject({ status: 'failed', processed_hospitals: 7, failed_hospitals: 1, batch_activated: false });
  expect(statuses.filter((s: string) => s === 'failed')).toHaveLength(1);
  expect(statuses.filter((s: string) => s === 'created')).toHaveLength(7);
  expect(requestsTo(stack.sim, 'activate')).toHaveLength(0);
  expect(stack.sim.hospitals().every((h) => !h.active)).toBe(true);
});

test('when identical rows run concurrently and their answers are lost, then each still ends with its own hospital', async () => {
  stack = await startStack({ sim: { createDelayMs: 10 }, env: { UPSTREAM_CONCURRENCY: '4' } });
  stack.sim.inject('create', { kind: 'lose-response' }, 3);

  const res = await upload(csv(4, () => 'Same Hospital').replace(/\d+ Main St/g, 'One Road'));

  expect(res.body.status).toBe('completed');
  const ids = res.body.hospitals.map((h: { hospital_id: number }) => h.hospital_id);
  expect(new Set(ids).size).toBe(4);
  expect(stack.sim.hospitals()).toHaveLength(4);
});

test('when 20 creates are in flight at once in the real service process, then it prints nothing to stderr (no listener-leak warning) and logs only JSON lines', async () => {
  // Half a second per create (within a 5 s timeout): all 20 sends leave long before the first
  // answer, even on a loaded CI machine (at 100 ms, one CI run saw only 17 in flight at once).
  const sim = await startSimulator({ createDelayMs: 500 });
  const dir = tempDir();
  try {
    const service = await startService({ directoryUrl: sim.url, dbPath: join(dir.path, 'history.db'), env: { UPSTREAM_CONCURRENCY: '20', UPSTREAM_TIMEOUT_MS: '5000' } });
    const form = new FormData();
    form.append('file', new Blob([csv(20)], { type: 'text/csv' }), 'h.csv');
    const res = await fetch(`${service.url}/hospitals/bulk`, { method: 'POST', body: form });
    expect(await res.json()).toMatchObject({ status: 'completed', processed_hospitals: 20, batch_activated: true });
    expect(sim.stats().maxInFlightCreates).toBe(20);

    expect(await service.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(service.stderr()).toBe('');
    expect(service.logs.filter((line) => typeof line === 'string')).toEqual([]);
  } finally {
    await killAllServices();
    await sim.close();
    dir.remove();
  }
});
