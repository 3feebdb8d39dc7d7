/**
 * Figure 2 — concurrency: 20 rows with UPSTREAM_CONCURRENCY=20 at a create delay D of
 * 1000 ms should take about one D; row by row (UPSTREAM_CONCURRENCY=1) at the same D, in
 * the same run, should take 20 D and next to nothing more, and is the reference for the
 * speed-up. Row by row, a fresh service's first 20-row upload is shown apart as "cold" and
 * the second is the figure, as at concurrency 20.
 *
 * Simulator rate limits off; a fresh service per concurrency, warmed up with one 1-row
 * upload at D=5 ms. At concurrency 20 its first 20-row upload is reported apart as "cold"
 * (nothing JIT-compiled yet: a service's first upload after a deploy), and the figure is the
 * median of the next 3, as in the overhead figure. UPSTREAM_RATE_WINDOW_MS is 100 ms and the
 * uploads are 300 ms apart, so the limiter (30 creates per window) never makes a create wait.
 */
import { createSimulator, type Simulator } from '../../simulator/simulator.js';
import { assertCompleted, hospitalsCsv, median, ms, requestsSince, sec, serviceEnv, startChild, tempDir, upload, type BenchEngine, type DatabaseEnv, type FigureResult } from '../lib.js';

const ROWS = 20;
const DELAY_MS = 1000;
const TARGET_RATIO = 1.05;
const TARGET_SPEEDUP = 15;
/** Row by row, the same 20 rows should cost 20 creates and next to nothing else. */
const TARGET_SERIAL = 1.01;
/** Uploads at concurrency 20 on one service: the first is the cold one. */
const PARALLEL_UPLOADS = 4;
/** Row by row, on one service: the first is the cold one, the second the figure. */
const SERIAL_UPLOADS = 2;
const WINDOW_MS = 100;

type Measured = Awaited<ReturnType<typeof measure>>;

async function run(sim: Simulator, database: DatabaseEnv, concurrency: number, uploads: number): Promise<Measured[]> {
  const service = await startChild({
    label: `concurrency ${concurrency}`,
    env: serviceEnv(sim.url, database, { UPSTREAM_CONCURRENCY: String(concurrency), UPSTREAM_RATE_WINDOW_MS: String(WINDOW_MS) }),
  });
  try {
    sim.setCreateDelay(5);
    assertCompleted(await upload(service.url, hospitalsCsv(1)), 1, `concurrency ${concurrency} warm-up`);
    sim.setCreateDelay(DELAY_MS);
    const measured: Measured[] = [];
    for (let k = 0; k < uploads; k++) {
      // Past the limiter's window: the last upload's slots count for no one now.
      await new Promise((resolve) => setTimeout(resolve, 3 * WINDOW_MS));
      measured.push(await measure(sim, service.url, concurrency));
    }
    return measured;
  } finally {
    await service.stop();
  }
}

async function measure(sim: Simulator, serviceUrl: string, concurrency: number) {
  const from = sim.requests.length;
  const before = sim.stats().maxInFlightCreates;
  const result = await upload(serviceUrl, hospitalsCsv(ROWS));
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
    // Σ of the creates' own durations, and first create sent → last create answered.
    createsMs: creates.reduce((total, r) => total + r.durationMs!, 0),
    createsSpanMs: lastCreateAnswer - firstCreate,
    // Last create answered → the client has the report (commits, activation, finish, answer).
    afterCreatesMs: result.doneAt - lastCreateAnswer,
    // Client send → first create reaches the directory (upload, CSV, insert, wake-up).
    headMs: firstCreate - result.sentAt,
    // Last create answered → the pre-activation read arrives (every row's commit, then the read).
    tailMs: read ? read.receivedAt - lastCreateAnswer : Number.NaN,
    // Activation answered → the client has the report.
    endMs: result.doneAt - Math.max(...log.map((r) => r.receivedAt + r.durationMs!)),
  };
}

export async function concurrency(engine: BenchEngine): Promise<FigureResult> {
  const dir = tempDir('concurrency');
  const sim = createSimulator({ createDelayMs: DELAY_MS, rateLimits: false });
  await sim.listen();
  try {
    const [cold, ...warm] = (await run(sim, await engine.freshDatabase(dir.path, 'parallel'), 20, PARALLEL_UPLOADS)) as [Measured, ...Measured[]];
    const parallel = [...warm].sort((a, b) => a.wallMs - b.wallMs)[Math.floor(warm.length / 2)]!;
    sim.reset();
    const [serialCold, serial] = (await run(sim, await engine.freshDatabase(dir.path, 'serial'), 1, SERIAL_UPLOADS)) as [Measured, Measured];
    const ratio = parallel.wallMs / DELAY_MS;
    const speedup = serial.wallMs / parallel.wallMs;
    return {
      rows: [
        {
          figure: `2a. concurrency: 20 rows, UPSTREAM_CONCURRENCY=20, D=${DELAY_MS} ms (median of ${warm.length})`,
          measured: ms(parallel.wallMs),
          reference: `D = ${ms(DELAY_MS)}`,
          ratio: ratio.toFixed(3),
          target: `≤ ${TARGET_RATIO}`,
          pass: ratio <= TARGET_RATIO,
        },
        {
          figure: '2a. concurrency, cold: the first 20-row upload of a fresh process (info)',
          measured: ms(cold.wallMs),
          reference: `D = ${ms(DELAY_MS)}`,
          ratio: (cold.wallMs / DELAY_MS).toFixed(3),
          target: '-',
          pass: null,
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
        {
          figure: '2c. row by row, cold: the first 20-row upload of a fresh process (info)',
          measured: ms(serialCold.wallMs),
          reference: `ideal 20 × D = ${ms(ROWS * DELAY_MS)}`,
          ratio: (serialCold.wallMs / (ROWS * DELAY_MS)).toFixed(3),
          target: '-',
          pass: null,
        },
      ],
      formulas: [
        `concurrency: ratio = client wall time of the 20-row upload at UPSTREAM_CONCURRENCY=20 ÷ D (the configured ${DELAY_MS} ms create delay), the median of uploads 2–${PARALLEL_UPLOADS} on one service process, its first shown apart as "cold"; speed-up = wall time of the same upload at UPSTREAM_CONCURRENCY=1 (same D, same run) ÷ that median; row by row = that wall time ÷ (20 × D), the second 20-row upload of a fresh service process at UPSTREAM_CONCURRENCY=1, its first shown apart as "cold".`,
      ],
      notes: [
        `concurrency=20, uploads in order (cold first): ${[cold, ...warm].map((m) => ms(m.wallMs)).join(', ')}; the median one: client wall ${ms(parallel.wallMs)} = ${ms(parallel.headMs)} from the send to the first create + ${ms(parallel.spreadMs)} until the 20th create reached the directory (${parallel.maxInFlight} at most in flight) + creates of median ${ms(parallel.createMs)} (max ${ms(parallel.maxCreateMs)}) ` +
          `+ ${ms(parallel.tailMs)} from the last create answer to the next request (the 20 rows' commits; the pre-activation read is skipped when every id came from an answer) + activation + ${ms(parallel.endMs)} to the client.`,
        `concurrency=1, uploads in order (cold first): ${ms(serialCold.wallMs)}, ${ms(serial.wallMs)}; the second: ${ms(serial.wallMs)} client wall = ${ms(serial.headMs)} from the send to the first create (upload, wake-up) + ${ms(serial.createsSpanMs)} from the first create to the last answer (the directory's ${ms(serial.createsMs)}, creates median ${ms(serial.createMs)}, and ${ms(serial.createsSpanMs - serial.createsMs)} between an answer and the next create, ${ms((serial.createsSpanMs - serial.createsMs) / (ROWS - 1), 1)} each) + ${ms(serial.afterCreatesMs)} from the last answer to the report (activation).`,
      ],
    };
  } finally {
    await sim.close();
    dir.remove();
  }
}
