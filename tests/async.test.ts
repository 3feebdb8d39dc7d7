import request from 'supertest';
import { parseSse, type Stack, startStack } from './helpers.js';

const csv = (rows: number) =>
  ['name,address,phone', ...Array.from({ length: rows }, (_, i) => `Hospital ${i + 1},${i + 1} Main St,555-01${String(i).padStart(2, '0')}`)].join('\n');

let stack: Stack;
afterEach(async () => stack?.close());

const uploadAsync = (rows: number, how: 'prefer' | 'query' = 'prefer') => {
  const req = request(stack.app).post(how === 'query' ? '/hospitals/bulk?async=true' : '/hospitals/bulk');
  if (how === 'prefer') void req.set('Prefer', 'respond-async');
  return req.attach('file', Buffer.from(csv(rows)), 'hospitals.csv');
};

/** Drops what differs between two runs of the same file: ids, times and hospital ids. */
function comparable(report: Record<string, unknown>) {
  const { batch_id: _id, created_at: _c, completed_at: _d, processing_time_seconds: _p, ...rest } = report;
  const hospitals = (rest.hospitals as Record<string, unknown>[]).map(({ hospital_id: _h, ...row }) => row);
  return { ...rest, hospitals };
}

async function waitForStatus(id: string, statuses: string[]) {
  for (let i = 0; i < 200; i += 1) {
    const res = await request(stack.app).get(`/batches/${id}`);
    if (statuses.includes(res.body.status)) return res.body;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`batch ${id} never reached ${statuses.join('/')}`);
}

describe('async uploads', () => {
  test('when the client sends Prefer: respond-async, then it gets 202 with Location at once and the batch completes in the background', async () => {
    stack = await startStack({ sim: { createDelayMs: 30 } });

    const res = await uploadAsync(3);

    expect(res.status).toBe(202);
    expect(res.headers.location).toBe(`/batches/${res.body.batch_id}`);
    expect(res.headers['preference-applied']).toBe('respond-async');
    expect(res.body).toEqual({
      batch_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      status: expect.stringMatching(/^(pending|processing)$/),
      total_hospitals: 3,
      links: { self: `/batches/${res.body.batch_id}`, events: `/batches/${res.body.batch_id}/events` },
    });
    const final = await waitForStatus(res.body.batch_id, ['completed']);
    expect(final.batch_activated).toBe(true);
    expect(stack.sim.hospitals().filter((h) => h.creation_batch_id === res.body.batch_id && h.active)).toHaveLength(3);
  });

  test('when ?async=true is used, then the answer is also 202', async () => {
    stack = await startStack();

    const res = await uploadAsync(1, 'query');

    expect(res.status).toBe(202);
    await waitForStatus(res.body.batch_id, ['completed']);
  });

  test('when an async upload has a bad file, then it is still refused with 400 at once and nothing is sent', async () => {
    stack = await startStack();

    const res = await request(stack.app)
      .post('/hospitals/bulk')
      .set('Prefer', 'respond-async')
      .attach('file', Buffer.from('name\nA\n'), 'bad.csv');

    expect(res.status).toBe(400);
    expect(res.body.errors[0].message).toMatch(/Required column "address"/);
    expect(stack.sim.requests).toEqual([]);
  });

  test('while a batch runs, then GET /batches/:id carries progress that moves, and the final report equals a synchronous upload of the same file', async () => {
    stack = await startStack({ sim: { createDelayMs: 40 } });
    const { body: accepted } = await uploadAsync(5);

    const seen: { done: number; pending: number; percent: number; eta_seconds: number | null; elapsed_seconds: number }[] = [];
    let report: Record<string, unknown> | undefined;
    while (!report) {
      const { body } = await request(stack.app).get(`/batches/${accepted.batch_id}`);
      if (body.progress) seen.push(body.progress);
      if (body.status === 'completed') report = body;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const sync = await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(csv(5)), 'hospitals.csv');

    const dones = seen.map((p) => p.done);
    expect(new Set(dones).size).toBeGreaterThanOrEqual(3);
    expect(dones).toEqual([...dones].sort((a, b) => a - b));
    expect(seen.every((p) => p.done + p.pending <= 5 && p.percent >= 0 && p.percent <= 100)).toBe(true);
    expect(seen.some((p) => p.done > 0 && p.eta_seconds !== null && p.eta_seconds > 0)).toBe(true);
    expect(report).not.toHaveProperty('progress');
    expect(comparable(report)).toEqual(comparable(sync.body));
  });

  test('while a batch runs and finishes, then every GET /batches/:id shows one moment: its counts match its rows, and a completed batch has every row activated', async () => {
    stack = await startStack({ sim: { createDelayMs: 5 }, env: { UPSTREAM_CONCURRENCY: '4' } });
    const { body: accepted } = await uploadAsync(12);

    // Four readers at once, as fast as they can, until the batch has finished.
    const seen: Record<string, unknown>[] = [];
    let done = false;
    const reader = async () => {
      while (!done) {
        const { body } = await request(stack.app).get(`/batches/${accepted.batch_id}`);
        seen.push(body);
        if (body.status !== 'pending' && body.status !== 'processing') done = true;
      }
    };
    await Promise.all([reader(), reader(), reader(), reader()]);
    expect(seen.find((body) => body.status !== 'pending' && body.status !== 'processing')).toMatchObject({ status: 'completed', batch_activated: true });

    const torn = seen.filter((body) => {
      const statuses = (body.hospitals as { status: string }[]).map((h) => h.status);
      const created = statuses.filter((s) => s === 'created' || s === 'created_and_activated').length;
      const failed = statuses.filter((s) => s === 'failed' || s === 'unknown').length;
      const activated = statuses.filter((s) => s === 'created_and_activated').length;
      const finished = body.status === 'completed';
      return (
        body.processed_hospitals !== created ||
        body.failed_hospitals !== failed ||
        finished !== (activated === 12) ||
        body.batch_activated !== (activated === 12)
      );
    });
    expect(seen.length).toBeGreaterThan(10);
    expect(torn.map((body) => ({ status: body.status, processed: body.processed_hospitals, activated: body.batch_activated }))).toEqual([]);
  });
});

describe('event stream', () => {
  test('when a client follows a batch from the start, then it receives every row event in order and the final report, then the stream ends', async () => {
    stack = await startStack({ sim: { createDelayMs: 20 } });
    const { body: accepted } = await uploadAsync(4);

    const res = await request(stack.app).get(`/batches/${accepted.batch_id}/events`);

    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    const events = parseSse(res.text);
    const rows = events.filter((e) => e.event === 'row');
    expect(rows.map((e) => e.data.row)).toEqual([1, 2, 3, 4]);
    expect(rows.every((e) => e.data.status === 'created')).toBe(true);
    expect(rows.at(-1)!.data.progress).toMatchObject({ done: 4, pending: 0, percent: 100 });
    expect(events.filter((e) => e.event === 'batch').map((e) => e.data.status)).toEqual(['processing', 'processing', 'completed']);
    const last = events.at(-1)!;
    expect(last.event).toBe('report');
    expect(last.data).toMatchObject({ batch_id: accepted.batch_id, status: 'completed', processed_hospitals: 4 });
    const ids = events.map((e) => Number(e.id));
    expect(ids.slice(0, -1)).toEqual([...ids.slice(0, -1)].sort((a, b) => a - b));
  });

  test('when a client connects after the batch finished, then it gets the whole replay and the report, and the stream ends', async () => {
    stack = await startStack();
    const { body: report } = await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(csv(2)), 'h.csv');

    const res = await request(stack.app).get(`/batches/${report.batch_id}/events`);

    const events = parseSse(res.text);
    expect(events.map((e) => e.event)).toEqual(['batch', 'row', 'row', 'batch', 'batch', 'report']);
    expect(events.at(-1)!.data).toEqual(report);
  });

  test('when a client reconnects with Last-Event-ID, then it receives only what came after that event', async () => {
    stack = await startStack();
    const { body: report } = await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(csv(3)), 'h.csv');
    const all = parseSse((await request(stack.app).get(`/batches/${report.batch_id}/events`)).text);
    const firstRow = all.find((e) => e.event === 'row')!;

    const res = await request(stack.app).get(`/batches/${report.batch_id}/events`).set('Last-Event-ID', firstRow.id!);

    const events = parseSse(res.text);
    expect(events.filter((e) => e.event === 'row').map((e) => e.data.row)).toEqual([2, 3]);
    expect(events.at(-1)!.event).toBe('report');
  });

  test('when ON_FAILURE=rollback and a row is refused, then the stream ends on the rollback, never on an intermediate failed', async () => {
    stack = await startStack({ env: { ON_FAILURE: 'rollback' } });
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'status', status: 400, body: { detail: 'Refused' } });
    const { body: accepted } = await uploadAsync(2);

    const events = parseSse((await request(stack.app).get(`/batches/${accepted.batch_id}/events`)).text);

    expect(events.filter((e) => e.event === 'batch').map((e) => e.data.status)).toEqual(['processing', 'rolled_back']);
    expect(events.at(-1)!).toMatchObject({ event: 'report', data: { status: 'rolled_back' } });
  });

  test('when a create answers 503 and then succeeds, then the stream says the directory is being retried before the row event', async () => {
    stack = await startStack();
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'status', status: 503, body: { detail: 'Service Unavailable' } });
    const { body: accepted } = await uploadAsync(2);

    const events = parseSse((await request(stack.app).get(`/batches/${accepted.batch_id}/events`)).text);

    const waits = events.filter((e) => e.event === 'directory');
    expect(waits).toHaveLength(1);
    expect(waits[0]!.data).toEqual({
      row: 2,
      op: 'create',
      reason: 'retry',
      attempt: 1,
      status: 503,
      message: 'Service Unavailable',
      retry_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      retry_in_seconds: expect.any(Number),
    });
    const order = events.map((e) => (e.event === 'row' ? `row ${e.data.row}` : e.event));
    expect(order.indexOf('directory')).toBeGreaterThan(order.indexOf('row 1'));
    expect(order.indexOf('directory')).toBeLessThan(order.indexOf('row 2'));
    expect(events.find((e) => e.event === 'row' && e.data.row === 2)!.data).toMatchObject({ status: 'created', attempts: 2 });
    expect(events.at(-1)).toMatchObject({ event: 'report', data: { status: 'completed' } });
  });

  test('when the directory is slow to wake, then each wait of the wake-up is in the stream, for no row', async () => {
    stack = await startStack();
    stack.sim.inject('health', { kind: 'status', status: 502 }, 2);
    const { body: accepted } = await uploadAsync(1);

    const events = parseSse((await request(stack.app).get(`/batches/${accepted.batch_id}/events`)).text);

    const waits = events.filter((e) => e.event === 'directory').map((e) => e.data);
    expect(waits).toEqual([
      expect.objectContaining({ row: null, op: 'wake', reason: 'retry', attempt: 1, status: 502 }),
      expect.objectContaining({ row: null, op: 'wake', reason: 'retry', attempt: 2, status: 502 }),
    ]);
    expect(events.at(-1)).toMatchObject({ event: 'report', data: { status: 'completed' } });
  });

  test('when the batch does not exist, then 404 problem JSON, not a stream', async () => {
    stack = await startStack();

    const res = await request(stack.app).get('/batches/6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55/events');

    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  });
});
