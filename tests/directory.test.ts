import { randomUUID } from 'node:crypto';
import { loadConfig } from '../src/config.js';
import { createDirectoryClient, DirectoryError, matchRows, type DirectoryClient, type DirectoryWait, type Hospital } from '../src/directory/client.js';
import type { Simulator, SimulatorOptions } from '../simulator/simulator.js';
import { closedPortUrl, FAST_ENV, memoryLogger, requestsTo, startSimulator } from './helpers.js';

const ROW = { name: 'General Hospital', address: '1 Main St', phone: '555-0100' };

let sim: Simulator;
let client: DirectoryClient;
let logLines: Record<string, unknown>[];

async function setUp(simOptions: SimulatorOptions = {}, env: Record<string, string> = {}) {
  sim = await startSimulator(simOptions);
  const log = memoryLogger();
  logLines = log.lines;
  client = createDirectoryClient(loadConfig({ ...FAST_ENV, HOSPITAL_API_BASE_URL: sim.url, ...env }), log.logger);
}

afterEach(async () => {
  client?.close();
  await sim?.close();
});

const create = (batchId: string, row = 1, claimed: Set<number> = new Set(), hospital = ROW) =>
  client.createHospital(hospital, { batchId, row, claimed });

describe('wake-up', () => {
  test('when the directory cold-starts for longer than one request timeout, then wake-up keeps trying and succeeds', async () => {
    await setUp({ coldStartMs: 400 }, { UPSTREAM_TIMEOUT_MS: '100', WARMUP_TIMEOUT_MS: '3000' });
    const started = Date.now();

    await client.wake();

    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(requestsTo(sim, 'health').length).toBeGreaterThanOrEqual(2);
  });

  test('when nothing listens at the directory URL, then wake-up fails with DirectoryUnavailable within WARMUP_TIMEOUT_MS', async () => {
    sim = await startSimulator();
    client = createDirectoryClient(
      loadConfig({ ...FAST_ENV, HOSPITAL_API_BASE_URL: await closedPortUrl(), WARMUP_TIMEOUT_MS: '300' }),
      memoryLogger().logger,
    );
    const started = Date.now();

    const error = await client.wake().catch((e: unknown) => e);

    expect(error).toBeInstanceOf(DirectoryError);
    expect((error as DirectoryError).kind).toBe('unavailable');
    expect((error as DirectoryError).message).toMatch(/^The Hospital Directory at http:\/\/127\.0\.0\.1:\d+ did not answer within 0 s \(last: .*ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(300 + 500);
  });

  test('when GET / answers 404 (a wrong base URL), then wake-up stops at once instead of retrying', async () => {
    await setUp();
    sim.inject('health', { kind: 'status', status: 404, body: { detail: 'Not Found' } });

    await expect(client.wake()).rejects.toMatchObject({ kind: 'unavailable', message: expect.stringContaining('HTTP 404') });
    expect(requestsTo(sim, 'health')).toHaveLength(1);
  });
});

describe('creating a hospital', () => {
  test('when the directory answers 200, then the row is created with one request', async () => {
    await setUp();
    const batchId = randomUUID();

    const outcome = await create(batchId);

    expect(outcome).toMatchObject({ kind: 'created', attempts: 1, adopted: false, hospital: { ...ROW, creation_batch_id: batchId, active: false } });
    expect(requestsTo(sim, 'create')).toHaveLength(1);
    expect(requestsTo(sim, 'create')[0]!.body).toEqual({ ...ROW, creation_batch_id: batchId });
  });

  test('when the directory answers 503, then the create comes back lost after one attempt, and nothing sleeps', async () => {
    await setUp();
    sim.inject('create', { kind: 'status', status: 503 });
    const before = Date.now();

    const outcome = await create(randomUUID());

    expect(outcome).toMatchObject({ kind: 'lost', attempts: 1, message: 'Simulated 503' });
    expect(outcome.kind === 'lost' && outcome.lostAt).toBeGreaterThanOrEqual(before);
    expect(requestsTo(sim, 'create')).toHaveLength(1);
    expect(requestsTo(sim, 'batch')).toHaveLength(0);
  });

  test('when the directory answers 429, then the row waits for the rate window and is created once', async () => {
    await setUp({}, { UPSTREAM_RATE_WINDOW_MS: '300', UPSTREAM_MAX_ATTEMPTS: '1' });
    sim.inject('create', { kind: 'status', status: 429, body: { error: 'Rate limit exceeded: 30 per 1 minute' } });

    const outcome = await create(randomUUID());

    const creates = requestsTo(sim, 'create');
    expect(outcome).toMatchObject({ kind: 'created', attempts: 2 });
    expect(creates.map((r) => r.status)).toEqual([429, 200]);
    expect(creates[1]!.receivedAt - creates[0]!.receivedAt).toBeGreaterThanOrEqual(300);
    expect(sim.hospitals()).toHaveLength(1);
  });

  test('when the directory refuses a row with 422, then it is rejected after exactly one request with the directory\'s words', async () => {
    await setUp();

    const outcome = await create(randomUUID(), 1, new Set(), { ...ROW, name: '   ' });

    expect(outcome).toMatchObject({ kind: 'rejected', status: 422, attempts: 1 });
    expect(outcome.kind === 'rejected' && outcome.message).toMatch(/^name: /);
    expect(requestsTo(sim, 'create')).toHaveLength(1);
  });

  test('when the batch already holds 20 hospitals, then the 400 is kept as the reason and never retried', async () => {
    await setUp();
    const batchId = randomUUID();
    for (let row = 1; row <= 20; row += 1) await create(batchId, row, new Set(), { ...ROW, name: `H${row}` });

    const outcome = await create(batchId, 21);

    expect(outcome).toEqual({ kind: 'rejected', status: 400, message: 'Batch cannot exceed 20 hospitals', attempts: 1 });
    expect(requestsTo(sim, 'create')).toHaveLength(21);
  });

  /** Sends creates that lose their answers, then settles them as the workflow would. */
  const createAndSettle = async (batchId: string, rows: number[], claimed = new Set<number>()) => {
    const outcomes = await Promise.all(rows.map((row) => create(batchId, row, claimed)));
    const lost = outcomes.flatMap((o, i) => (o.kind === 'lost' ? [{ ...ROW, row: rows[i]!, lostAt: o.lostAt }] : []));
    return { outcomes, lost, settlement: await client.settleCreates(batchId, lost, claimed) };
  };

  test('when a 502 comes back although the directory stored the row, then settling adopts that hospital instead of creating a second', async () => {
    await setUp();
    sim.inject('create', { kind: 'status', status: 502, store: true });

    const { outcomes, lost, settlement } = await createAndSettle(randomUUID(), [1]);

    expect(outcomes[0]).toMatchObject({ kind: 'lost', attempts: 1 });
    expect(settlement.adopted.get(lost[0]!)).toMatchObject({ id: sim.hospitals()[0]!.id });
    expect(settlement.absent).toEqual([]);
    expect(requestsTo(sim, 'create')).toHaveLength(1);
    expect(sim.hospitals()).toHaveLength(1);
  });

  test('when the answer to a stored create is lost, then one batch read settles it on the stored hospital', async () => {
    await setUp();
    sim.inject('create', { kind: 'lose-response' });

    const { lost, settlement } = await createAndSettle(randomUUID(), [1]);

    expect(settlement.adopted.get(lost[0]!)?.id).toBe(sim.hospitals()[0]!.id);
    expect(settlement.reads).toBe(1);
    expect(requestsTo(sim, 'create')).toHaveLength(1);
    expect(requestsTo(sim, 'batch')).toHaveLength(1);
  });

  test('when two identical rows both lose their answers, then settling gives each its own hospital, and claimed ones are never taken', async () => {
    await setUp();
    sim.inject('create', { kind: 'lose-response' }, 2);
    const claimed = new Set<number>();

    const { lost, settlement } = await createAndSettle(randomUUID(), [1, 2], claimed);

    const ids = lost.map((row) => settlement.adopted.get(row)?.id);
    expect(new Set(ids).size).toBe(2);
    expect(sim.hospitals().map((h) => h.id).sort()).toEqual([...ids].sort());
    expect([...claimed].sort()).toEqual([...ids].sort());
  });

  test('when a create hangs past the timeout but the directory stored it, then settling adopts it without re-sending', async () => {
    await setUp({}, { UPSTREAM_TIMEOUT_MS: '150' });
    sim.inject('create', { kind: 'hang', store: true });

    const { outcomes, settlement } = await createAndSettle(randomUUID(), [1]);

    expect(outcomes[0]!.kind).toBe('lost');
    expect(settlement.adopted.size).toBe(1);
    expect(requestsTo(sim, 'create')).toHaveLength(1);
    expect(sim.hospitals()).toHaveLength(1);
  });

  test('when a create hangs past the timeout and was never stored, then settling polls and finds it absent only after the settle time', async () => {
    await setUp({}, { UPSTREAM_TIMEOUT_MS: '150', UPSTREAM_SETTLE_MS: '300' });
    sim.inject('create', { kind: 'hang' });

    const { lost, settlement } = await createAndSettle(randomUUID(), [1]);

    expect(settlement.absent).toEqual(lost);
    const reads = requestsTo(sim, 'batch');
    expect(reads.length).toBeGreaterThanOrEqual(2);
    expect(reads.at(-1)!.receivedAt).toBeGreaterThanOrEqual(lost[0]!.lostAt + 300);
    expect(sim.hospitals()).toHaveLength(0);
  });

  test('when the connection is reset before the directory reads the request, then the create is lost and settling finds it absent', async () => {
    await setUp();
    sim.inject('create', { kind: 'reset' });

    const { outcomes, settlement } = await createAndSettle(randomUUID(), [1]);

    expect(outcomes[0]).toMatchObject({ kind: 'lost', attempts: 1 });
    expect(settlement.absent).toHaveLength(1);
    expect(sim.hospitals()).toHaveLength(0);
  });

  test('when the directory goes away, then the row fails as not sent', async () => {
    await setUp();
    const batchId = randomUUID();
    await sim.close();

    const outcome = await create(batchId);

    expect(outcome).toMatchObject({ kind: 'failed', outcome: 'not_created', attempts: 3, message: expect.stringContaining('ECONNREFUSED') });
  });

  test('every attempt is logged once with batch id, row, attempt, outcome class, status and latency', async () => {
    await setUp({}, { UPSTREAM_RATE_WINDOW_MS: '100' });
    sim.inject('create', { kind: 'status', status: 429, body: { error: 'Rate limit exceeded: 30 per 1 minute' } });
    const batchId = randomUUID();

    await create(batchId, 7);

    const lines = logLines.filter((l) => l.message === 'directory request' && l.op === 'create');
    expect(lines).toEqual([
      expect.objectContaining({ batch_id: batchId, row: 7, attempt: 1, outcome: 'not_sent', status: 429, latency_ms: expect.any(Number) }),
      expect.objectContaining({ batch_id: batchId, row: 7, attempt: 2, outcome: 'ok', status: 200, latency_ms: expect.any(Number) }),
    ]);
  });
});

describe('activation', () => {
  async function createdBatch(rows = 2) {
    const batchId = randomUUID();
    const ids: number[] = [];
    for (let row = 1; row <= rows; row += 1) {
      const outcome = await create(batchId, row, new Set(), { ...ROW, name: `H${row}` });
      if (outcome.kind === 'created') ids.push(outcome.hospital.id);
    }
    return { batchId, ids };
  }

  test('when every row exists, then the batch is activated with one PATCH', async () => {
    await setUp();
    const { batchId, ids } = await createdBatch();

    await expect(client.activateBatch(batchId, ids)).resolves.toEqual({ activatedCount: 2 });
    expect(requestsTo(sim, 'activate')).toHaveLength(1);
    expect(sim.hospitals().every((h) => h.active)).toBe(true);
  });

  test('when the activation answer is lost, then the batch is read and reported activated without a second PATCH', async () => {
    await setUp();
    const { batchId, ids } = await createdBatch();
    sim.inject('activate', { kind: 'lose-response' });

    await expect(client.activateBatch(batchId, ids)).resolves.toEqual({ activatedCount: 2 });
    expect(requestsTo(sim, 'activate')).toHaveLength(1);
    expect(sim.hospitals().every((h) => h.active)).toBe(true);
  });

  test('when activation answers 503 although it went through, then the read confirms it and no second PATCH is sent', async () => {
    await setUp();
    const { batchId, ids } = await createdBatch();
    sim.inject('activate', { kind: 'status', status: 503, store: true });

    await expect(client.activateBatch(batchId, ids)).resolves.toEqual({ activatedCount: 2 });
    expect(requestsTo(sim, 'activate').map((r) => r.status)).toEqual([503]);
  });

  test('when activation answers 400 "already active" and the read shows all active, then activation succeeds', async () => {
    await setUp();
    const { batchId, ids } = await createdBatch();
    const detail = 'Cannot activate batch: one or more hospitals in the batch are already active';
    sim.inject('activate', { kind: 'status', status: 400, body: { detail }, store: true });

    await expect(client.activateBatch(batchId, ids)).resolves.toEqual({ activatedCount: 2 });
    expect(requestsTo(sim, 'activate')).toHaveLength(1);
  });

  test('when activation answers 400 and the read shows the batch still inactive, then it fails with the directory\'s words', async () => {
    await setUp();
    const { batchId, ids } = await createdBatch();
    sim.inject('activate', { kind: 'status', status: 400, body: { detail: 'Refused for a reason' } });

    await expect(client.activateBatch(batchId, ids)).rejects.toMatchObject({
      kind: 'activation_failed',
      message: 'The directory refused activation: Refused for a reason',
    });
    expect(requestsTo(sim, 'activate')).toHaveLength(1);
  });

  test('when the batch was already activated earlier, then reading confirms it and no PATCH is sent', async () => {
    await setUp();
    const { batchId, ids } = await createdBatch();
    await fetch(`${sim.url}/hospitals/batch/${batchId}/activate`, { method: 'PATCH' });
    const before = requestsTo(sim, 'activate').length;

    await expect(client.activateBatch(batchId, ids)).resolves.toEqual({ activatedCount: 2 });
    expect(requestsTo(sim, 'activate')).toHaveLength(before);
  });

  test('when a row of the batch is missing upstream, then activation fails, names the gap, and no PATCH is sent', async () => {
    await setUp();
    const { batchId, ids } = await createdBatch();
    await fetch(`${sim.url}/hospitals/${ids[1]}`, { method: 'DELETE' });

    const error = await client.activateBatch(batchId, ids).catch((e: unknown) => e);

    expect(error).toMatchObject({ kind: 'activation_failed', message: expect.stringContaining('1 of 2 hospital(s)') });
    expect(requestsTo(sim, 'activate')).toHaveLength(0);
    expect(sim.hospitals().some((h) => h.active)).toBe(false);
  });
});

describe('batch reads and deletes', () => {
  test('when the directory has no such batch, then getBatch gives [] and deleteBatch gives 0', async () => {
    await setUp();
    const batchId = randomUUID();

    await expect(client.getBatch(batchId)).resolves.toEqual([]);
    await expect(client.deleteBatch(batchId)).resolves.toBe(0);
  });

  test('when a batch exists, then deleteBatch removes it upstream and says how many', async () => {
    await setUp();
    const batchId = randomUUID();
    await create(batchId, 1);
    await create(batchId, 2, new Set(), { ...ROW, name: 'Other' });

    await expect(client.deleteBatch(batchId)).resolves.toBe(2);
    expect(sim.hospitals()).toHaveLength(0);
  });
});

describe('pacing', () => {
  test('when 40 creates are issued back to back under the real 30-per-window limit, then the directory never answers 429', async () => {
    await setUp({ rateLimits: { windowMs: 400 } }, { UPSTREAM_RATE_WINDOW_MS: '400' });
    const batchIds = [randomUUID(), randomUUID()];

    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) => create(batchIds[i % 2]!, i + 1, new Set(), { ...ROW, name: `H${i}` })),
    );

    expect(outcomes.every((o) => o.kind === 'created')).toBe(true);
    expect(sim.stats().count429).toBe(0);
    expect(sim.hospitals()).toHaveLength(40);
    const times = sim.stats().createTimes;
    for (const t of times) expect(times.filter((u) => u >= t && u < t + 400).length).toBeLessThanOrEqual(30);
  });
});

describe('a host name that does not resolve', () => {
  test('when HOSPITAL_API_BASE_URL names a host that does not resolve, then wake-up fails at once and says which variable to fix', async () => {
    // .invalid never resolves (RFC 6761): the resolver answers locally, no traffic leaves.
    client = createDirectoryClient(
      loadConfig({ ...FAST_ENV, HOSPITAL_API_BASE_URL: 'http://no-such-host.invalid', WARMUP_TIMEOUT_MS: '60000' }),
      memoryLogger().logger,
    );
    const waits: DirectoryWait[] = [];

    const error = await client.wake({ onWait: (wait) => waits.push(wait) }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(DirectoryError);
    expect((error as DirectoryError).kind).toBe('unavailable');
    expect((error as DirectoryError).message).toMatch(
      /^The host name in HOSPITAL_API_BASE_URL \(http:\/\/no-such-host\.invalid\) does not resolve \(.*ENOTFOUND.*\)\. Check the variable/,
    );
    expect(waits).toEqual([]);
  }, 10_000); // far below WARMUP_TIMEOUT_MS: it must not have waited for it
});

describe('waits reported to onWait', () => {
  const collect = () => {
    const waits: DirectoryWait[] = [];
    return { waits, onWait: (wait: DirectoryWait) => void waits.push(wait) };
  };

  test('when a create\'s answer is lost, then the hook hears no wait: nothing sleeps, the caller settles it later', async () => {
    await setUp();
    sim.inject('create', { kind: 'status', status: 503, body: { detail: 'Service Unavailable' } });
    const { waits, onWait } = collect();

    const outcome = await client.createHospital(ROW, { batchId: randomUUID(), row: 1, claimed: new Set(), onWait });

    expect(outcome).toMatchObject({ kind: 'lost', attempts: 1 });
    expect(waits).toEqual([]);
  });

  test('when the directory answers 429, then the hook hears one rate-limited wait of about the window, and no retry wait', async () => {
    await setUp({}, { UPSTREAM_RATE_WINDOW_MS: '600' });
    sim.inject('create', { kind: 'status', status: 429, body: { error: 'Rate limit exceeded: 30 per 1 minute' } });
    const { waits, onWait } = collect();

    const outcome = await client.createHospital(ROW, { batchId: randomUUID(), row: 1, claimed: new Set(), onWait });

    expect(outcome).toMatchObject({ kind: 'created', attempts: 2 });
    expect(waits).toEqual([
      { op: 'create', reason: 'rate_limited', attempt: 2, status: 429, message: expect.stringContaining('429'), delayMs: expect.any(Number) },
    ]);
    expect(waits[0]!.delayMs).toBeGreaterThan(300);
    expect(waits[0]!.delayMs).toBeLessThanOrEqual(600);
  });

  test('when our own pacing holds a create, then the hook hears a rate-limited wait with no status', async () => {
    await setUp({}, { UPSTREAM_CREATE_RATE_PER_MIN: '1', UPSTREAM_RATE_WINDOW_MS: '300' });
    const batchId = randomUUID();
    await create(batchId, 1);
    const { waits, onWait } = collect();

    const outcome = await client.createHospital({ ...ROW, name: 'Second' }, { batchId, row: 2, claimed: new Set(), onWait });

    expect(outcome.kind).toBe('created');
    expect(waits).toEqual([{ op: 'create', reason: 'rate_limited', attempt: 1, status: null, message: expect.stringContaining('Pacing'), delayMs: expect.any(Number) }]);
    expect(waits[0]!.delayMs).toBeLessThanOrEqual(300);
    expect(sim.stats().count429).toBe(0);
  });

  test('when nothing listens at the directory URL, then wake-up reports each retry wait before it gives up', async () => {
    sim = await startSimulator();
    client = createDirectoryClient(
      loadConfig({ ...FAST_ENV, HOSPITAL_API_BASE_URL: await closedPortUrl(), WARMUP_TIMEOUT_MS: '300' }),
      memoryLogger().logger,
    );
    const { waits, onWait } = collect();

    await expect(client.wake({ onWait })).rejects.toMatchObject({ kind: 'unavailable' });

    expect(waits.length).toBeGreaterThanOrEqual(2);
    expect(waits.map((w) => w.attempt)).toEqual(waits.map((_, i) => i + 1));
    for (const wait of waits) {
      expect(wait).toMatchObject({ op: 'wake', reason: 'retry', status: null, message: expect.stringContaining('ECONNREFUSED') });
    }
  });

  test('when the directory cold-starts for longer than one request timeout, then wake-up reports its retry waits and succeeds', async () => {
    await setUp({ coldStartMs: 400 }, { UPSTREAM_TIMEOUT_MS: '100', WARMUP_TIMEOUT_MS: '3000' });
    const { waits, onWait } = collect();

    await client.wake({ onWait });

    expect(waits.length).toBeGreaterThanOrEqual(1);
    expect(waits.length).toBe(requestsTo(sim, 'health').length - 1);
    for (const wait of waits) expect(wait).toMatchObject({ op: 'wake', reason: 'retry', status: null });
  });

  test('when batch reads, activation and deletes meet a 503, then each names its own operation to the hook', async () => {
    await setUp();
    const batchId = randomUUID();
    const created = await create(batchId);
    const ids = created.kind === 'created' ? [created.hospital.id] : [];
    sim.inject('batch', { kind: 'status', status: 503 });
    sim.inject('activate', { kind: 'status', status: 503 });
    sim.inject('deleteBatch', { kind: 'status', status: 503 });
    const { waits, onWait } = collect();

    await client.getBatch(batchId, { batchId, onWait });
    await client.activateBatch(batchId, ids, { batchId, onWait });
    await client.deleteBatch(batchId, { batchId, onWait });

    expect(waits.map((w) => [w.op, w.reason, w.status])).toEqual([
      ['get_batch', 'retry', 503],
      ['activate', 'retry', 503],
      ['delete_batch', 'retry', 503],
    ]);
  });

  test('when the onWait listener throws, then the call it watches still completes and the failure is logged', async () => {
    await setUp({}, { UPSTREAM_RATE_WINDOW_MS: '100' });
    sim.inject('create', { kind: 'status', status: 429, body: { error: 'Rate limit exceeded: 30 per 1 minute' } });

    const outcome = await client.createHospital(ROW, {
      batchId: randomUUID(),
      row: 4,
      claimed: new Set(),
      onWait: () => {
        throw new Error('listener broke');
      },
    });

    expect(outcome).toMatchObject({ kind: 'created', attempts: 2 });
    expect(logLines).toContainEqual(expect.objectContaining({ message: 'directory wait listener failed', row: 4, error: 'listener broke' }));
  });
});

describe('matching rows to a batch listing (reconciliation)', () => {
  const hospital = (id: number, name: string, phone: string | null = '555-0100'): Hospital => ({
    id,
    name,
    address: '1 Main St',
    phone,
    creation_batch_id: null,
    active: false,
    created_at: '2026-01-01T00:00:00',
  });

  test('when identical rows meet identical hospitals, then each row takes its own, lowest id first, and claimed ones are skipped', () => {
    const upstream = [hospital(5, 'A'), hospital(2, 'A'), hospital(3, 'B'), hospital(1, 'A')];
    const rows = [1, 2, 3, 4].map((row) => ({ row, name: row === 4 ? 'B' : 'A', address: '1 Main St', phone: '555-0100' }));
    const claimed = new Set([1]);

    const matches = matchRows(upstream, rows, claimed);

    expect([...matches].map(([row, h]) => [row.row, h.id])).toEqual([
      [1, 2],
      [2, 5],
      [4, 3],
    ]);
    expect([...claimed].sort()).toEqual([1, 2, 3, 5]);
  });

  test('when a row differs only in a missing phone, then it matches a hospital stored without one and nothing else', () => {
    const upstream = [hospital(1, 'A'), hospital(2, 'A', null)];

    const matches = matchRows(upstream, [{ name: 'A', address: '1 Main St', phone: null }], new Set());

    expect([...matches.values()].map((h) => h.id)).toEqual([2]);
  });
});
