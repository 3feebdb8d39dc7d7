/**
 * Several real service processes (the built server) on one history, and the directory
 * simulator: whatever happens to the instance running a batch, the same service started
 * again finishes it by itself, with exactly one hospital per row, on either engine.
 * Several instances sharing one PostgreSQL database: instances.pg.test.ts.
 */
import { join } from 'node:path';
import type { Simulator } from '../simulator/simulator.js';
import { requestsTo, startSimulator, tempDir } from './helpers.js';
import { createInFlight, expectOneActiveHospitalPerRow, report, uploadAsync } from './instances.js';
import { killAllServices, startService, waitUntil } from './service-process.js';

/** Real processes, real waits for leases and retries. */
const TIMEOUT_MS = 60_000;

let sim: Simulator;
let dir: ReturnType<typeof tempDir>;
beforeEach(async () => {
  dir = tempDir();
});
afterEach(async () => {
  await killAllServices();
  await sim?.close();
  dir.remove();
});

describe('one instance, restarted', () => {
  test('when the service is SIGKILLed mid-batch and started again, then it finishes the batch by itself (no resume call), one hospital per row', async () => {
    sim = await startSimulator({ createDelayMs: 200 });
    const dbPath = join(dir.path, 'history.db');
    // A short lease: on PostgreSQL the restarted process waits for the dead one's lease.
    const env = { BATCH_LEASE_MS: '1000', SHUTDOWN_GRACE_MS: '0' };
    const first = await startService({ directoryUrl: sim.url, dbPath, env });
    const batchId = await uploadAsync(first, 4);
    await waitUntil('the 2nd create is in flight', () => createInFlight(sim, 2));
    await first.kill('SIGKILL');

    const second = await startService({ directoryUrl: sim.url, dbPath, env });
    await waitUntil('the batch completes', async () => (await report(second, batchId)).status === 'completed', 20_000);

    const done = await report(second, batchId);
    expect(done).toMatchObject({ status: 'completed', processed_hospitals: 4, failed_hospitals: 0, batch_activated: true });
    expectOneActiveHospitalPerRow(sim, batchId, 4);
    expect(second.logs).toContainEqual(expect.objectContaining({ message: 'batch taken over to finish it', batch_id: batchId }));
  }, TIMEOUT_MS);
});

