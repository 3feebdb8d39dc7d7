import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { createApp } from '../src/app.js';
import { buildDeps } from '../src/deps.js';
import { requestsTo, startStack, type Stack } from './helpers.js';

const csv = (rows: number) =>
  ['name,address,phone', ...Array.from({ length: rows }, (_, i) => `Hospital ${i + 1},${i + 1} Main St,555-01${String(i).padStart(2, '0')}`)].join('\n');

/**
 * How long the create that a cancel must catch in flight lasts: longer than polling for
 * its `creating` and asking for the cancel take on a loaded CI machine.
 */
const IN_FLIGHT_MS = 1500;
/** The service waits for such a create's answer (the tests' usual timeout is 1 s). */
const ANSWERED = { UPSTREAM_TIMEOUT_MS: String(3 * IN_FLIGHT_MS) };

let stack: Stack;
afterEach(async () => stack?.close());

/** Polls the report until `done` says so (no timing is asserted: the test only waits). */
async function reportWhen(app: Stack['app'], id: string, done: (body: Record<string, any>) => boolean): Promise<Record<string, any>> {
  for (;;) {
    const res = await request(app).get(`/batches/${id}`);
    if (done(res.body)) return res.body;
    await sleep(5);
  }
}

describe('POST /batches/:id/cancel', () => {
  test('when a running batch is cancelled from another instance during its first row, then that row lands, the rest stay pending, nothing is activated; a resume finishes it', async () => {
    // The first create must still be in flight when the cancel arrives, however loaded the
    // machine is while the test polls and asks: 1.5 s, then 200 ms once it has been asked.
    stack = await startStack({ sim: { createDelayMs: IN_FLIGHT_MS }, env: ANSWERED });
    // A second instance on the same database: the cancel is asked there, the batch runs here.
    const other = await buildDeps(stack.config);
    try {
      const otherApp = createApp(other);
      const accepted = await request(stack.app).post('/hospitals/bulk?async=true').attach('file', Buffer.from(csv(3)), 'h.csv');
      const id = accepted.body.batch_id as string;
      await reportWhen(stack.app, id, (body) => body.hospitals?.[0]?.status === 'creating');

      const cancel = await request(otherApp).post(`/batches/${id}/cancel`);
      expect(cancel.status).toBe(202);
      expect(cancel.headers.location).toBe(`/batches/${id}`);
      expect(cancel.body.status).toBe('processing');
      expect(cancel.body.cancel_requested_at).not.toBeNull();
      stack.sim.setCreateDelay(200);

      const stopped = await reportWhen(stack.app, id, (body) => body.status !== 'processing');
      expect(stopped.status).toBe('cancelled');
      expect(stopped.batch_activated).toBe(false);
      expect(stopped.cancel_requested_at).toBeNull();
      expect(stopped.hospitals.map((row: { status: string }) => row.status)).toEqual(['created', 'pending', 'pending']);
      expect(stopped.error).toMatch(/^Cancelled on request; 2 row\(s\) not attempted stay pending/);
      expect(stopped.audit).toEqual([{ action: 'cancel', by: null, at: expect.any(String) }]);
      expect(requestsTo(stack.sim, 'create')).toHaveLength(1);
      expect(requestsTo(stack.sim, 'activate')).toHaveLength(0);
      const events = await request(stack.app).get(`/batches/${id}/events`);
      expect(events.text).toMatch(/event: batch\ndata: \{"status":"cancelled"/);

      const resumed = await request(stack.app).post(`/batches/${id}/resume`);
      expect(resumed.status).toBe(200);
      expect(resumed.body.status).toBe('completed');
      expect(resumed.body.batch_activated).toBe(true);
      expect(resumed.body.audit.map((entry: { action: string }) => entry.action)).toEqual(['cancel', 'resume']);
      // The row created before the cancel was kept, not created again.
      expect(requestsTo(stack.sim, 'create')).toHaveLength(3);
      expect(stack.sim.hospitals()).toHaveLength(3);
    } finally {
      await other.close();
    }
  });

  test('when a running batch is cancelled during its last row, then that row lands and nothing is activated', async () => {
    stack = await startStack({ sim: { createDelayMs: IN_FLIGHT_MS }, env: ANSWERED });
    const accepted = await request(stack.app).post('/hospitals/bulk?async=true').attach('file', Buffer.from(csv(2)), 'h.csv');
    const id = accepted.body.batch_id as string;
    await reportWhen(stack.app, id, (body) => body.hospitals?.[1]?.status === 'creating');

    const cancel = await request(stack.app).post(`/batches/${id}/cancel`);

    expect(cancel.status).toBe(202);
    const stopped = await reportWhen(stack.app, id, (body) => body.status !== 'processing');
    expect(stopped.status).toBe('cancelled');
    expect(stopped.batch_activated).toBe(false);
    expect(stopped.hospitals.map((row: { status: string }) => row.status)).toEqual(['created', 'created']);
    expect(stopped.error).toMatch(/^Cancelled on request; 0 row\(s\) not attempted stay pending/);
    expect(requestsTo(stack.sim, 'create')).toHaveLength(2);
    expect(requestsTo(stack.sim, 'activate')).toHaveLength(0);
    expect(stack.sim.hospitals().filter((h) => h.active)).toHaveLength(0);
  });

  test('when a queued batch is cancelled, then it is cancelled at once, and can be rolled back', async () => {
    stack = await startStack();
    const id = randomUUID();
    await stack.deps.store.admitBatch(
      { id, filename: 'h.csv', fileSha256: 'x', idempotencyKey: null, rows: [{ row: 1, line: 2, name: 'A', address: 'B', phone: null }] },
      { maxActive: 5 },
    );

    const cancel = await request(stack.app).post(`/batches/${id}/cancel`);

    expect(cancel.status).toBe(200);
    expect(cancel.body).toMatchObject({ status: 'cancelled', batch_activated: false, hospitals: [{ status: 'pending' }] });
    expect(stack.sim.requests).toEqual([]);
    const again = await request(stack.app).post(`/batches/${id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ batch_status: 'cancelled', detail: 'The batch is cancelled; only a pending or processing batch can be cancelled.' });
    const rollback = await request(stack.app).post(`/batches/${id}/rollback`);
    expect([rollback.status, rollback.body.status]).toEqual([200, 'rolled_back']);
  });

  test('when the batch is finished or unknown, then 409 or 404, and a bad id 400', async () => {
    stack = await startStack();
    const done = await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(csv(1)), 'h.csv');

    const finished = await request(stack.app).post(`/batches/${done.body.batch_id}/cancel`);
    const unknown = await request(stack.app).post(`/batches/${randomUUID()}/cancel`);
    const bad = await request(stack.app).post('/batches/nope/cancel');

    expect(finished.status).toBe(409);
    expect(finished.body.batch_status).toBe('completed');
    expect(unknown.status).toBe(404);
    expect(bad.status).toBe(400);
  });
});

describe('cancel and lost answers', () => {
  test('when a cancel is asked while a create\'s answer is lost, then the lost row is settled by a read, not sent again, and left pending like the rows not attempted', async () => {
    // The cancel must arrive before the first create times out (row 2 goes out then): IN_FLIGHT_MS.
    stack = await startStack({ env: { UPSTREAM_CONCURRENCY: '1', UPSTREAM_TIMEOUT_MS: String(IN_FLIGHT_MS), UPSTREAM_SETTLE_MS: '200', UPSTREAM_MAX_ATTEMPTS: '3' } });
    // The first create is never stored and never answered: lost, then found absent by the settling read.
    stack.sim.inject('create', { kind: 'hang', store: false });
    const accepted = await request(stack.app).post('/hospitals/bulk?async=true').attach('file', Buffer.from(csv(2)), 'h.csv');
    const id = accepted.body.batch_id as string;
    await reportWhen(stack.app, id, (body) => body.hospitals?.[0]?.status === 'creating');

    expect((await request(stack.app).post(`/batches/${id}/cancel`)).status).toBe(202);

    const stopped = await reportWhen(stack.app, id, (body) => body.status !== 'processing');
    expect(stopped.status).toBe('cancelled');
    expect(stopped.hospitals.map((row: { status: string }) => row.status)).toEqual(['pending', 'pending']);
    expect(stopped.error).toMatch(/^Cancelled on request; 2 row\(s\) not attempted stay pending/);
    expect(requestsTo(stack.sim, 'create')).toHaveLength(1);
    expect(requestsTo(stack.sim, 'batch').length).toBeGreaterThanOrEqual(1);
    expect(requestsTo(stack.sim, 'activate')).toHaveLength(0);

    const resumed = await request(stack.app).post(`/batches/${id}/resume`);
    expect(resumed.body).toMatchObject({ status: 'completed', batch_activated: true });
    expect(stack.sim.hospitals()).toHaveLength(2);
  });
});
