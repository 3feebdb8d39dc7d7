/**
 * Figure 2 — concurrency: 20 rows with UPSTREAM_CONCURRENCY=20 at a create delay D of
 * 1000 ms should take about one D; row by row (UPSTREAM_CONCURRENCY=1) at the same D, run
 * once in the same run, is the reference for the speed-up.
 *
 * Simulator rate limits off; each run on a fresh service after a 1-row warm-up at D=5 ms
 * (21 creates: under the limiter's 30 per 60 s window, so it never waits).
 */
import { createSimulator, type Simulator } from '../../simulator/simulator.js';
import { assertCompleted, hospitalsCsv, median, ms, requestsSince, sec, serviceEnv, startChild, tempDir, upload, type BenchEngine, type DatabaseEnv, type FigureResult } from '../lib.js';

const ROWS = 20;
const DELAY_MS = 1000;
const TARGET_RATIO = 1.05;
const TARGET_SPEEDUP = 15;
/** Row by row, the same 20 rows should cost 20 creates and next to nothing else. */
const TARGET_SERIAL = 1.01;

async function run(sim: Simulator, database: DatabaseEnv, concurrency: number) {
  const service = await startChild({ label: `concurrency ${concurrency}`, env: serviceEnv(sim.url, database, { UPSTREAM_CONCURRENCY: String(concurrency) }) });
  try {
    sim.setCreateDelay(5);
    assertCompleted(await upload(service.url, hospitalsCsv(1)), 1, `concurrency ${concurrency} warm-up`);
    sim.setCreateDelay(DELAY_MS);
    const from = sim.requests.length;
    const before = sim.stats().maxInFlightCreates;
    const result = await upload(service.url, hospitalsCsv(ROWS));
    assertCompleted(result, ROWS, `concurrency ${concurrency}`);
    const log = requestsSince(sim, from);
    const creates = log.filter((r) => r.route === 'create');
    const firstCreate = creates[0]!.receivedAt;
    const lastCreateAnswer = Math.max(...creates.map((r) => r.receivedAt + r.durationMs!));
    const read = log.find((r) => r.route === 'batch' || r.route === 'activate');
    return {
      wallMs: result.wallMs,
      createMs: median(creates.map((r) => r.durationMs!)),
      maxCreateMs: Math.max(...creates.map((r) => r.durationMs!)),
      // How far apart the 20 creates reached the directory: ~0 when they really go at once.
      spreadMs: Math.max(...creates.map((r) => r.receivedAt)) - firstCreate,
      maxInFlight: Math.max(before, sim.stats().maxInFlightCreates),
      upstreamMs: Math.max(...log.map((r) => r.receivedAt + r.durationMs!)) - log[0]!.receivedAt,
      // Client send → first create reaches the directory (upload, CSV, insert, wake-up).
      headMs: firstCreate - result.sentAt,
      // Last create answered → the pre-activation read arrives (every row's commit, then the read).
      tailMs: read ? read.receivedAt - lastCreateAnswer : Number.NaN,
      // Activation answered → the client has the report.
      endMs: result.doneAt - Math.max(...log.map((r) => r.receivedAt + r.durationMs!)),
    };
  } finally {
    await service.stop();
  }
}

export async function concurrency(engine: BenchEngine): Promise<FigureResult> {
  const dir = tempDir('concurrency');
  const sim = createSimulator({ createDelayMs: DELAY_MS, rateLimits: false });
  await sim.listen();
  try {
    const parallel = await run(sim, await engine.freshDatabase(dir.path, 'parallel'), 20);
    sim.reset();
    const serial = await run(sim, await engine.freshDatabase(dir.path, 'serial'), 1);
    const ratio = parallel.wallMs / DELAY_MS;
    const speedup = serial.wallMs / parallel.wallMs;
    return {
      rows: [
        {
          figure: `2a. concurrency: 20 rows, UPSTREAM_CONCURRENCY=20, D=${DELAY_MS} ms`,
          measured: ms(parallel.wallMs),
          reference: `D = ${ms(DELAY_MS)}`,
          ratio: ratio.toFixed(3),
          target: `≤ ${TARGET_RATIO}`,
          pass: ratio <= TARGET_RATIO,
        },
        {
          figure: `2b. speed-up over row by row at D=${DELAY_MS} ms`,
          measured: `${speedup.toFixed(1)}×`,
          reference: `row by row ${sec(serial.wallMs)}`,
          ratio: speedup.toFixed(2),
          target: `≥ ${TARGET_SPEEDUP}×`,
          pass: speedup >= TARGET_SPEEDUP,
        },
        {
          figure: `2c. row by row: 20 rows, UPSTREAM_CONCURRENCY=1, D=${DELAY_MS} ms`,
          measured: ms(serial.wallMs),
          reference: `ideal 20 × D = ${ms(ROWS * DELAY_MS)}`,
          ratio: (serial.wallMs / (ROWS * DELAY_MS)).toFixed(3),
          target: `≤ ${TARGET_SERIAL}`,
          pass: serial.wallMs / (ROWS * DELAY_MS) <= TARGET_SERIAL,
        },
      ],
      formulas: [
        `concurrency: ratio = client wall time of the 20-row upload at UPSTREAM_CONCURRENCY=20 ÷ D (the configured ${DELAY_MS} ms create delay); speed-up = wall time of the same upload at UPSTREAM_CONCURRENCY=1 (run once, same D, same run) ÷ wall time at 20.`,
      ],
      notes: [
        `concurrency=20: client wall ${ms(parallel.wallMs)} = ${ms(parallel.headMs)} from the send to the first create + ${ms(parallel.spreadMs)} until the 20th create reached the directory (${parallel.maxInFlight} at most in flight) + creates of median ${ms(parallel.createMs)} (max ${ms(parallel.maxCreateMs)}) ` +
          `+ ${ms(parallel.tailMs)} from the last create answer to the next request (the 20 rows' commits; the pre-activation read is skipped when every id came from an answer) + activation + ${ms(parallel.endMs)} to the client.`,
        `concurrency=1: ${ms(serial.wallMs)} client wall, ${ms(serial.upstreamMs)} from the first upstream request to the last answer, creates median ${ms(serial.createMs)}.`,
      ],
    };
  } finally {
    await sim.close();
    dir.remove();
  }
}
