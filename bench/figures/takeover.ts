/**
 * Issue 14's figures — several instances on one PostgreSQL database (started by the bench
 * itself from the npm registry's binaries, like the tests):
 * - take-over: SIGKILL the instance running a batch; the time until another instance
 *   starts working on it (its wake-up GET / reaches the directory), ÷ BATCH_LEASE_MS;
 * - handover: SIGTERM it during a create; the time from that row's answer (the row in
 *   flight, which the stopping instance finishes) until another instance's wake-up.
 * Both batches must then complete with exactly one hospital per row.
 */
import { createSimulator, type Simulator } from '../../simulator/simulator.js';
import { createTestDatabase, startPostgres } from '../../tests/pg/server.js';
import { AUTH_HEADERS, hospitalsCsv, ms, serviceEnv, startChild, tempDir, type Child, type FigureResult } from '../lib.js';

const LEASE_MS = 2_000;
const ROWS = 5;
const TAKEOVER_TARGET = 1.2;
const HANDOVER_TARGET_MS = 2_000;

async function uploadAsync(service: Child): Promise<string> {
  const body = new FormData();
  body.append('file', new Blob([hospitalsCsv(ROWS)], { type: 'text/csv' }), 'bench.csv');
  const res = await fetch(`${service.url}/hospitals/bulk`, { method: 'POST', body, headers: { ...AUTH_HEADERS, prefer: 'respond-async' } });
  if (res.status !== 202) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { batch_id: string }).batch_id;
}

async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Runs one scenario; returns the wake-up of the instance that took over, and the batch outcome. */
async function scenario(sim: Simulator, databaseUrl: string, dir: string, signal: 'SIGKILL' | 'SIGTERM') {
  const env = serviceEnv(sim.url, { DATABASE_PATH: `${dir}/unused.db`, DATABASE_URL: databaseUrl }, { BATCH_LEASE_MS: String(LEASE_MS), SHUTDOWN_GRACE_MS: '5000' });
  const [a, b] = await Promise.all([startChild({ label: `${signal} A`, env }), startChild({ label: `${signal} B`, env })]);
  try {
    const from = sim.requests.length;
    const batchId = await uploadAsync(a);
    const inFlight = await until('the 2nd create is in flight', () => {
      const creates = sim.requests.slice(from).filter((r) => r.route === 'create');
      return creates.length >= 2 && creates[1]!.status === null ? creates[1]! : undefined;
    });
    const stoppedAt = Date.now();
    process.kill(a.pid, signal);
    const wokeBy = await until('another instance wakes the directory', () =>
      sim.requests.slice(from).find((r) => r.route === 'health' && r.receivedAt > stoppedAt),
    );
    await until('the batch is complete upstream', () => {
      const held = sim.hospitals().filter((h) => h.creation_batch_id === batchId);
      return held.length === ROWS && held.every((h) => h.active);
    });
    const held = sim.hospitals().filter((h) => h.creation_batch_id === batchId);
    const rowInFlightAnsweredAt = inFlight.receivedAt + (inFlight.durationMs ?? 0);
    return { stoppedAt, wokeAt: wokeBy.receivedAt, rowInFlightAnsweredAt, duplicates: held.length - new Set(held.map((h) => h.name)).size };
  } finally {
    await Promise.allSettled([a.stop(), b.stop()]);
  }
}

export async function takeover(): Promise<FigureResult> {
  const dir = tempDir('takeover');
  const server = await startPostgres();
  const sim = createSimulator({ createDelayMs: 500, rateLimits: false });
  await sim.listen();
  try {
    const killDb = await createTestDatabase(server.url);
    const killed = await scenario(sim, killDb.url, dir.path, 'SIGKILL');
    sim.reset();
    const termDb = await createTestDatabase(server.url);
    const terminated = await scenario(sim, termDb.url, dir.path, 'SIGTERM');
    const takeoverMs = killed.wokeAt - killed.stoppedAt;
    const handoverMs = terminated.wokeAt - terminated.rowInFlightAnsweredAt;
    const duplicates = killed.duplicates + terminated.duplicates;
    return {
      rows: [
        {
          figure: 'take-over after SIGKILL ÷ lease',
          measured: ms(takeoverMs),
          reference: `BATCH_LEASE_MS ${ms(LEASE_MS)}`,
          ratio: (takeoverMs / LEASE_MS).toFixed(3),
          target: `≤ ${TAKEOVER_TARGET}`,
          pass: takeoverMs / LEASE_MS <= TAKEOVER_TARGET && duplicates === 0,
        },
        {
          figure: 'handover after SIGTERM (after the row in flight)',
          measured: ms(handoverMs),
          reference: `row in flight answered ${ms(terminated.rowInFlightAnsweredAt - terminated.stoppedAt)} after SIGTERM`,
          ratio: '-',
          target: `≤ ${ms(HANDOVER_TARGET_MS)}`,
          pass: handoverMs <= HANDOVER_TARGET_MS && duplicates === 0,
        },
      ],
      formulas: [
        `take-over: SIGKILL of the instance running a ${ROWS}-row batch (create delay 500 ms, during its 2nd create) → the other instance's wake-up GET / reaching the directory, ÷ BATCH_LEASE_MS (${LEASE_MS} ms); two instances on one PostgreSQL database.`,
        'handover: SIGTERM during the 2nd create → that create answered (the stopping instance finishes it) → the other instance\'s wake-up GET /.',
      ],
      notes: [`take-over and handover: both batches completed with ${duplicates} duplicate hospital(s).`],
      analysis: [
        `take-over ${ms(takeoverMs)}: the dead owner's lease runs out between ⅔ and 1 lease after the kill (it renews every third), and instances look every lease/10 (${LEASE_MS / 10} ms).`,
        `handover ${ms(handoverMs)}: the stopping instance releases the batch as soon as its row in flight is answered; the others look every second at most (BATCH_LEASE_MS/10 here).`,
      ],
    };
  } finally {
    await sim.close();
    await server.stop();
    dir.remove();
  }
}
