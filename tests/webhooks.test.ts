import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { startWebhookDelivery } from '../src/ops/webhooks.js';
import { startStack, type Stack } from './helpers.js';

const SECRET = 'whsec-test-secret-0123456789';
const csv = 'name,address,phone\nGeneral,1 Main St,555-0100\nSt. Mary,2 Oak Ave,\n';

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  answered: number;
}

/** A real receiver on 127.0.0.1 that answers the scripted statuses in turn (then 200), verifying like README's snippet. */
async function startReceiver(script: number[]) {
  const received: Received[] = [];
  const waiters: (() => void)[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      const answered = script.shift() ?? 200;
      received.push({ headers: req.headers, body, answered });
      res.writeHead(answered).end();
      waiters.splice(0).forEach((wake) => wake());
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
let delivery: { stop: () => void } | undefined;
afterEach(async () => {
  delivery?.stop();
  await stack?.close();
  await receiver?.close();
});

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
    // Settled: another round finds nothing due.
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

  test('when WEBHOOK_URL is not set, then finishing a batch records no delivery', async () => {
    stack = await startStack();
    receiver = await startReceiver([]);
    await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(csv), 'h.csv');
    expect(await stack.deps.store.claimWebhooks({ owner: 'probe', leaseMs: 1000, limit: 10 })).toEqual([]);
  });
});
