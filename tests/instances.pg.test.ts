/**
 * Several real service processes (the built server) sharing one PostgreSQL database (the
 * same dbPath maps to the same database, see service-process.ts) and one directory
 * simulator: any instance finishes what another started. Runs in jest's postgres project only.
 */
import { join } from 'node:path';
import type { Simulator } from '../simulator/simulator.js';
import { parseSse, requestsTo, startSimulator, tempDir } from './helpers.js';
import { createInFlight, csv, expectOneActiveHospitalPerRow, form, report, uploadAsync } from './instances.js';
import { killAllServices, startService, waitUntil, type ServiceProcess } from './service-process.js';

/** Real processes, real waits for leases and retries. */
const TIMEOUT_MS = 60_000;

let sim: Simulator;
let dir: ReturnType<typeof tempDir>;
beforeEach(() => {
  dir = tempDir();
});
afterEach(async () => {
  await killAllServices();
  await sim?.close();
  dir.remove();
});

describe('several instances on one PostgreSQL database', () => {
  const dbPath = () => join(dir.path, 'shared.db');

  test('when the instance running a batch is SIGKILLed, then another one takes it over after its lease, reconciles and finishes it: one hospital per row', async () => {
    sim = await startSimulator({ createDelayMs: 300 });
    const env = { BATCH_LEASE_MS: '1500' };
    const [a, b] = await Promise.all([startService({ directoryUrl: sim.url, dbPath: dbPath(), env }), startService({ directoryUrl: sim.url, dbPath: dbPath(), env })]);
    const batchId = await uploadAsync(a, 5);
    await waitUntil('the 2nd create is in flight', () => createInFlight(sim, 2));
    await a.kill('SIGKILL');

    await waitUntil('the batch completes on the other instance', async () => (await report(b, batchId)).status === 'completed', 30_000);
    expectOneActiveHospitalPerRow(sim, batchId, 5);
    expect(b.logs).toContainEqual(expect.objectContaining({ message: 'batch taken over to finish it', batch_id: batchId }));
    // The create cut off by the kill was stored upstream: it was adopted, not sent again.
    const sent = requestsTo(sim, 'create').map((r) => (r.body as { name: string }).name);
    expect(sent.filter((name) => name === 'Hospital 2')).toHaveLength(1);
  }, TIMEOUT_MS);

  test('when the instance running a batch gets SIGTERM, then it hands the batch over at once: another finishes it long before the lease would expire', async () => {
    sim = await startSimulator({ createDelayMs: 300 });
    // Ten minutes of lease: finishing within this test's minute proves nobody waited for it.
    const env = { BATCH_LEASE_MS: '600000', SHUTDOWN_GRACE_MS: '5000' };
    const [a, b] = await Promise.all([startService({ directoryUrl: sim.url, dbPath: dbPath(), env }), startService({ directoryUrl: sim.url, dbPath: dbPath(), env })]);
    const batchId = await uploadAsync(a, 5);
    await waitUntil('the 2nd create is in flight', () => createInFlight(sim, 2));
    expect(await a.kill('SIGTERM')).toEqual({ code: 0, signal: null });

    await waitUntil('the batch completes on the other instance', async () => (await report(b, batchId)).status === 'completed', 30_000);
    expectOneActiveHospitalPerRow(sim, batchId, 5);
    // The row in flight finished on A before it let go; B created only the rest.
    expect(requestsTo(sim, 'create')).toHaveLength(5);
    expect(b.logs).toContainEqual(expect.objectContaining({ message: 'batch taken over to finish it', batch_id: batchId }));
  }, TIMEOUT_MS);

  test('when a batch runs on instance A, then a client following its events on instance B sees every row live and the final report', async () => {
    sim = await startSimulator({ createDelayMs: 100 });
    const [a, b] = await Promise.all([startService({ directoryUrl: sim.url, dbPath: dbPath() }), startService({ directoryUrl: sim.url, dbPath: dbPath() })]);
    const batchId = await uploadAsync(a, 3);

    const stream = await fetch(`${b.url}/batches/${batchId}/events`);
    const events = parseSse(await stream.text());

    expect(events.filter((e) => e.event === 'row').map((e) => e.data.row)).toEqual([1, 2, 3]);
    expect(events.at(-1)).toMatchObject({ event: 'report', data: { batch_id: batchId, status: 'completed', processed_hospitals: 3 } });
    // B ran none of it.
    expect(b.logs).not.toContainEqual(expect.objectContaining({ message: 'batch started', batch_id: batchId }));
  }, TIMEOUT_MS);

  test('when the same Idempotency-Key and file reach two instances at once, then there is one batch and the directory sees each row once', async () => {
    sim = await startSimulator({ createDelayMs: 50 });
    const [a, b] = await Promise.all([startService({ directoryUrl: sim.url, dbPath: dbPath() }), startService({ directoryUrl: sim.url, dbPath: dbPath() })]);
    const send = (service: ServiceProcess) =>
      fetch(`${service.url}/hospitals/bulk`, { method: 'POST', body: form(csv(3)), headers: { 'idempotency-key': 'same-key-1', prefer: 'respond-async' } });

    const answers = await Promise.all([send(a), send(b), send(a), send(b)]);
    const ids = await Promise.all(answers.map(async (res) => ((await res.json()) as { batch_id: string }).batch_id));

    expect(new Set(ids).size).toBe(1);
    // One accepted it (202); the others were told it is still running (409) or replayed it (200).
    expect(answers.filter((res) => res.status === 202)).toHaveLength(1);
    for (const res of answers.filter((r) => r.status !== 202)) expect([200, 409]).toContain(res.status);
    const list = (await (await fetch(`${b.url}/batches`)).json()) as { batches: unknown[] };
    expect(list.batches).toHaveLength(1);
    await waitUntil('the batch completes', async () => (await report(a, ids[0]!)).status === 'completed', 20_000);
    expect(requestsTo(sim, 'create')).toHaveLength(3);
  }, TIMEOUT_MS);
});
