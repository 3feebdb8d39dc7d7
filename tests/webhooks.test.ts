import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import request from 'supertest';
import { openStore } from '../src/db/index.js';
import { startWebhookDelivery } from '../src/ops/webhooks.js';
import type { Simulator } from '../simulator/simulator.js';
import { startSimulator, startStack, tempDir, type Stack } from './helpers.js';
import { form } from './instances.js';
import { databaseEnv, killAllServices, startService, waitUntil, type ServiceProcess } from './service-process.js';

const SECRET = 'whsec-test-secret-0123456789';
const csv = 'name,address,phone\nGeneral,1 Main St,555-0100\nSt. Mary,2 Oak Ave,\n';

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  answered: number;
}

/**
 * A real receiver on 127.0.0.1 that answers the scripted statuses in turn, then what
 * `otherwise` says (200 by default); with `holdMs`, each answer leaves that long after its
 * request has arrived.
 */
async function startReceiver(script: number[], otherwise: () => number = () => 200, { holdMs = 0 } = {}) {
  const received: Received[] = [];
  let arrived = 0;
  const waiters: (() => void)[] = [];
  const wakeAll = () => waiters.splice(0).forEach((wake) => wake());
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      arrived += 1;
      wakeAll();
      setTimeout(() => {
        const answered = script.shift() ?? otherwise();
        received.push({ headers: req.headers, body, answered });
        res.writeHead(answered).end();
        wakeAll();
      }, holdMs);
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    received,
    /** Resolves once `count` requests have arrived (the test waits; it asserts no timing). */
    async until(count: number) {
      while (received.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
    },
    /** Resolves once `count` requests have arrived, answered or not. */
    async arrived(count: number) {
      while (arrived < count) await new Promise<void>((resolve) => waiters.push(resolve));
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** README's verification, as a receiver would write it. */
function verify(secret: string, rawBody: string, header: string): boolean {
  const { t, v1 } = Object.fromEntries(header.split(',').map((kv) => kv.split('=')));
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest('hex');
  return v1 === expected && Math.abs(Date.now() / 1000 - Number(t)) < 300;
}

let stack: Stack;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let delivery: ReturnType<typeof startWebhookDelivery> | undefined;
let sim: Simulator | undefined;
let dir: ReturnType<typeof tempDir> | undefined;
afterEach(async () => {
  await delivery?.stop();
  await killAllServices();
  await stack?.close();
  await sim?.close();
  sim = undefined;
  dir?.remove();
  dir = undefined;
  await receiver?.close();
});

/** Whether a service process logged `message` (with `fields`, when given). */
const logged = (service: ServiceProcess, message: string, fields: Record<string, unknown> = {}) =>
  service.logs.some((line) => typeof line === 'object' && line.message === message && Object.entries(fields).every(([key, value]) => line[key] === value));

describe('completion webhooks', () => {
  test('when the receiver fails twice, then the event is retried with the same id and signature scheme, and delivered once', async () => {
    receiver = await startReceiver([500, 503]);
    stack = await startStack({ env: { WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET, WEBHOOK_RETRY_BASE_MS: '10', WEBHOOK_POLL_MS: '10' } });
    delivery = startWebhookDelivery(stack.deps);

    const upload = await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(csv), 'h.csv');
    await receiver.until(3);

    expect(receiver.received.map((r) => r.answered)).toEqual([500, 503, 200]);
    const events = receiver.received.map((r) => JSON.parse(r.body) as Record<string, any>);
    expect(new Set(events.map((e) => e.id)).size).toBe(1);
    expect(events[2]).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      type: 'batch.completed',
      created_at: expect.any(String),
      data: (await request(stack.app).get('/batches')).body.batches[0],
    });
    expect(events[2]!.data).toMatchObject({ batch_id: upload.body.batch_id, status: 'completed', processed_hospitals: 2 });
    for (const r of receiver.received) {
      expect(r.headers['content-type']).toBe('application/json');
      expect(verify(SECRET, r.body, String(r.headers['hospital-bulk-signature']))).toBe(true);
      expect(verify('another-secret-0123456789', r.body, String(r.headers['hospital-bulk-signature']))).toBe(false);
    }
    // Settled: once the round that got the 200 has recorded it (the receiver saw the request
    // before the deliverer saw the answer), nothing is due, even a day later.
    await delivery.deliverDue();
    expect(await stack.deps.store.claimWebhooks({ owner: 'probe', leaseMs: 1000, limit: 10 }, Date.now() + 86_400_000)).toEqual([]);
    expect(JSON.stringify(stack.logLines)).not.toContain(SECRET);
  });

  test('when the service restarts before delivering, then the new process delivers the event it recorded', async () => {
    receiver = await startReceiver([]);
    stack = await startStack({ env: { WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET, WEBHOOK_POLL_MS: '10' } });
    const accepted = await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(csv), 'h.csv');
    const cancelled = await stack.deps.store.admitBatch(
      { id: '6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55', filename: 'q.csv', fileSha256: 'x', idempotencyKey: null, rows: [{ row: 1, line: 2, name: 'A', address: 'B', phone: null }] },
      { maxActive: 5 },
    );
    await request(stack.app).post(`/batches/${cancelled.kind === 'new' ? cancelled.batch.id : ''}/cancel`);
    expect(receiver.received).toEqual([]);

    await stack.restart();
    delivery = startWebhookDelivery(stack.deps);
    await receiver.until(2);

    const events = receiver.received.map((r) => JSON.parse(r.body) as { type: string; data: { batch_id: string } });
    expect(events.map((e) => [e.type, e.data.batch_id]).sort()).toEqual(
      [
        ['batch.completed', accepted.body.batch_id],
        ['batch.cancelled', '6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55'],
      ].sort(),
    );
  });

  test('when the process is SIGKILLed while the receiver refuses, then a new process on the same history delivers the signed batch.completed event, accepted once by id', async () => {
    let accepting = false;
    receiver = await startReceiver([], () => (accepting ? 200 : 500));
    sim = await startSimulator({ createDelayMs: 0 });
    dir = tempDir();
    const dbPath = join(dir.path, 'history.db');
    // Polled often; retried 1 s after a refusal, so the kill lands between attempts rather than
    // inside one (a delivery in flight keeps its lease for 40 s).
    const env = { WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET, WEBHOOK_POLL_MS: '10', WEBHOOK_RETRY_BASE_MS: '1000' };
    const first = await startService({ directoryUrl: sim.url, dbPath, env });
    const upload = await fetch(`${first.url}/hospitals/bulk`, { method: 'POST', body: form(csv) });
    const batch = (await upload.json()) as { batch_id: string; status: string };
    expect(batch.status).toBe('completed');

    await receiver.until(1);
    await waitUntil('the first process records the refusal', () => logged(first, 'webhook delivery failed; will retry'));
    expect(await first.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    const refused = receiver.received.length;
    expect(receiver.received.map((r) => r.answered)).toEqual(Array(refused).fill(500));
    accepting = true;

    const second = await startService({ directoryUrl: sim.url, dbPath, env });
    await waitUntil('the second process delivers the event', () => logged(second, 'webhook delivered', { batch_id: batch.batch_id }), 15_000);
    // A barrier, not a wait: a later batch's event is delivered too, so the loop has polled past the first one's.
    const later = (await (await fetch(`${second.url}/hospitals/bulk`, { method: 'POST', body: form(csv.replace('General', 'Western')) })).json()) as { batch_id: string };
    await waitUntil('the later event is delivered', () => logged(second, 'webhook delivered', { batch_id: later.batch_id }), 15_000);

    const events = receiver.received.map((r) => ({ ...r, event: JSON.parse(r.body) as { id: string; type: string; data: { batch_id: string; status: string } } }));
    const ofBatch = events.filter((r) => r.event.data.batch_id === batch.batch_id);
    expect(new Set(ofBatch.map((r) => r.event.id)).size).toBe(1);
    const accepted = ofBatch.filter((r) => r.answered >= 200 && r.answered < 300);
    expect(accepted).toHaveLength(1);
    expect(accepted[0]!.event).toMatchObject({ type: 'batch.completed', data: { batch_id: batch.batch_id, status: 'completed', processed_hospitals: 2 } });
    // The first process's refused attempts, then the second's one delivery: nothing sent again after it.
    expect(ofBatch.map((r) => r.answered)).toEqual([...Array(refused).fill(500), 200]);
    // Every id was accepted exactly once.
    const acceptedPerId: Record<string, number> = {};
    for (const r of events) if (r.answered >= 200 && r.answered < 300) acceptedPerId[r.event.id] = (acceptedPerId[r.event.id] ?? 0) + 1;
    expect(Object.values(acceptedPerId)).toEqual([1, 1]);
    for (const r of events) expect(verify(SECRET, r.body, String(r.headers['hospital-bulk-signature']))).toBe(true);
    expect(verify('another-secret-0123456789', accepted[0]!.body, String(accepted[0]!.headers['hospital-bulk-signature']))).toBe(false);
  }, 60_000);

  test('when SIGTERM arrives while the receiver is answering, then the process records the delivery before it exits, and the next process sends the event no more', async () => {
    receiver = await startReceiver([], () => 200, { holdMs: 1000 });
    sim = await startSimulator({ createDelayMs: 0 });
    dir = tempDir();
    const dbPath = join(dir.path, 'history.db');
    const env = { WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET, WEBHOOK_POLL_MS: '10' };
    const first = await startService({ directoryUrl: sim.url, dbPath, env });
    const batch = (await (await fetch(`${first.url}/hospitals/bulk`, { method: 'POST', body: form(csv) })).json()) as { batch_id: string; status: string };
    expect(batch.status).toBe('completed');

    // The delivery is on the wire; its 200 comes a second after the signal.
    await receiver.arrived(1);
    expect(await first.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(receiver.received.map((r) => r.answered)).toEqual([200]);
    const messages = first.logs.map((line) => (typeof line === 'object' ? line.message : line));
    expect(logged(first, 'webhook delivered', { batch_id: batch.batch_id })).toBe(true);
    expect(messages.indexOf('webhook delivered')).toBeLessThan(messages.indexOf('stopped'));

    // Had the 200 not been recorded, the event would still be leased, and sent again once the lease ran out.
    const history = await openStore({ DATABASE_PATH: dbPath, ...(await databaseEnv(dbPath)) });
    try {
      expect(await history.claimWebhooks({ owner: 'probe', leaseMs: 1000, limit: 10 }, Date.now() + 86_400_000)).toEqual([]);
    } finally {
      await history.close();
    }
  }, 60_000);

  test('when WEBHOOK_URL is not set, then finishing a batch records no delivery', async () => {
    stack = await startStack();
    receiver = await startReceiver([]);
    await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(csv), 'h.csv');
    expect(await stack.deps.store.claimWebhooks({ owner: 'probe', leaseMs: 1000, limit: 10 })).toEqual([]);
  });
});
