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
 *
 * The floor, measured once per run (in the first engine's pass) with the same uploads:
 * bench/floor-server.js, which only forwards the rows (no CSV checks, no database, no
 * pacing, no events), once with got as its directory client and once with node:http. The
 * service's time above the got floor is its own work; got's above the node:http floor is
 * what the client library costs on this machine.
 */
import { createSimulator, type Simulator } from '../../simulator/simulator.js';
import { FLOOR_JS, assertCompleted, hospitalsCsv, median, ms, requestsSince, sec, serviceEnv, startChild, tempDir, upload, type BenchEngine, type DatabaseEnv, type FigureResult } from '../lib.js';

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

/** The floor's wall times, as the figure takes them: the median warm upload at 20, the second row by row. */
interface Floor {
  parallelMs: number;
  serialMs: number;
}
let floors: { got: Floor; plain: Floor } | undefined;

/** Uploads to bench/floor-server.js as `run` does to the service: a 1-row warm-up, then `uploads` 20-row uploads; their wall times. */
async function floorRun(sim: Simulator, client: 'got' | 'node:http', concurrency: number, uploads: number): Promise<number[]> {
  const floor = await startChild({
    script: FLOOR_JS,
    label: `floor (${client}) at concurrency ${concurrency}`,
    env: { NODE_ENV: 'production', HOSPITAL_API_BASE_URL: sim.url, UPSTREAM_CONCURRENCY: String(concurrency), FLOOR_CLIENT: client },
  });
  try {
    sim.setCreateDelay(5);
    assertCompleted(await upload(floor.url, hospitalsCsv(1)), 1, `floor (${client}) warm-up`);
    sim.setCreateDelay(DELAY_MS);
    const walls: number[] = [];
    for (let k = 0; k < uploads; k++) {
      await new Promise((resolve) => setTimeout(resolve, 3 * WINDOW_MS));
      const result = await upload(floor.url, hospitalsCsv(ROWS));
      assertCompleted(result, ROWS, `floor (${client}) at concurrency ${concurrency}`);
      walls.push(result.wallMs);
    }
    return walls;
  } finally {
    await floor.stop();
  }
}

async function measureFloor(sim: Simulator, client: 'got' | 'node:http'): Promise<Floor> {
  const [, ...warm] = await floorRun(sim, client, 20, PARALLEL_UPLOADS);
  const [, serial] = await floorRun(sim, client, 1, SERIAL_UPLOADS);
  return { parallelMs: median(warm), serialMs: serial! };
}

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
    sim.reset();
    floors ??= { got: await measureFloor(sim, 'got'), plain: await measureFloor(sim, 'node:http') };
    const { got, plain } = floors;
    const ratio = parallel.wallMs / DELAY_MS;
    const speedup = serial.wallMs / parallel.wallMs;
    const serialIdeal = ROWS * DELAY_MS;
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
          figure: '2a. floor: the same uploads to bench/floor-server.js, got / node:http as its client (info)',
          measured: `${ms(got.parallelMs)} / ${ms(plain.parallelMs)}`,
          reference: `D = ${ms(DELAY_MS)}`,
          ratio: `${(got.parallelMs / DELAY_MS).toFixed(3)} / ${(plain.parallelMs / DELAY_MS).toFixed(3)}`,
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
          reference: `ideal 20 × D = ${ms(serialIdeal)}`,
          ratio: (serial.wallMs / serialIdeal).toFixed(3),
          target: `≤ ${TARGET_SERIAL}`,
          pass: serial.wallMs / serialIdeal <= TARGET_SERIAL,
        },
        {
          figure: '2c. floor row by row: the same upload to bench/floor-server.js, got / node:http as its client (info)',
          measured: `${ms(got.serialMs)} / ${ms(plain.serialMs)}`,
          reference: `ideal 20 × D = ${ms(serialIdeal)}`,
          ratio: `${(got.serialMs / serialIdeal).toFixed(3)} / ${(plain.serialMs / serialIdeal).toFixed(3)}`,
          target: '-',
          pass: null,
        },
        {
          figure: '2c. row by row, cold: the first 20-row upload of a fresh process (info)',
          measured: ms(serialCold.wallMs),
          reference: `ideal 20 × D = ${ms(serialIdeal)}`,
          ratio: (serialCold.wallMs / serialIdeal).toFixed(3),
          target: '-',
          pass: null,
        },
      ],
      formulas: [
        `floor: bench/floor-server.js (plain JavaScript under node) takes the same uploads (a 1-row warm-up, then the same 20-row uploads, the same figure taken: the median of uploads 2–${PARALLEL_UPLOADS} at UPSTREAM_CONCURRENCY=20, the second row by row) and only forwards them: GET /, the 20 creates, PATCH …/activate, its answer; no CSV checks, no database, no pacing, no retries, no events. Once with got configured and used as src/directory/transport.ts does, once with node:http and the same keep-alive agent. Measured once per run, in the first engine's pass.`,
        `concurrency: ratio = client wall time of the 20-row upload at UPSTREAM_CONCURRENCY=20 ÷ D (the configured ${DELAY_MS} ms create delay), the median of uploads 2–${PARALLEL_UPLOADS} on one service process, its first shown apart as "cold"; speed-up = wall time of the same upload at UPSTREAM_CONCURRENCY=1 (same D, same run) ÷ that median; row by row = that wall time ÷ (20 × D), the second 20-row upload of a fresh service process at UPSTREAM_CONCURRENCY=1, its first shown apart as "cold".`,
      ],
      notes: [
        `concurrency=20, uploads in order (cold first): ${[cold, ...warm].map((m) => ms(m.wallMs)).join(', ')}; the median one: client wall ${ms(parallel.wallMs)} = ${ms(parallel.headMs)} from the send to the first create + ${ms(parallel.spreadMs)} until the 20th create reached the directory (${parallel.maxInFlight} at most in flight) + creates of median ${ms(parallel.createMs)} (max ${ms(parallel.maxCreateMs)}) ` +
          `+ ${ms(parallel.tailMs)} from the last create answer to the next request (the 20 rows' commits; the pre-activation read is skipped when every id came from an answer) + activation + ${ms(parallel.endMs)} to the client.`,
        `concurrency=1, uploads in order (cold first): ${ms(serialCold.wallMs)}, ${ms(serial.wallMs)}; the second: ${ms(serial.wallMs)} client wall = ${ms(serial.headMs)} from the send to the first create (upload, wake-up) + ${ms(serial.createsSpanMs)} from the first create to the last answer (the directory's ${ms(serial.createsMs)}, creates median ${ms(serial.createMs)}, and ${ms(serial.createsSpanMs - serial.createsMs)} between an answer and the next create, ${ms((serial.createsSpanMs - serial.createsMs) / (ROWS - 1), 1)} each) + ${ms(serial.afterCreatesMs)} from the last answer to the report (activation).`,
      ],
      analysis: [
        `concurrency: ${ms(parallel.wallMs - DELAY_MS)} above D. A service that only forwards the rows (bench/floor-server.js) spends ${ms(got.parallelMs - DELAY_MS)} above D with got as its directory client and ${ms(plain.parallelMs - DELAY_MS)} with node:http: got's work on the 22 requests costs ${ms(got.parallelMs - plain.parallelMs)}, and the service's own (CSV checks, recording the batch and every row, events, the report) ${ms(parallel.wallMs - got.parallelMs)}. ` +
          `The target ≤ ${TARGET_RATIO} allows ${ms(TARGET_RATIO * DELAY_MS - DELAY_MS)} above D, ${ms(TARGET_RATIO * DELAY_MS - got.parallelMs)} above the got floor.`,
        `row by row: ${ms(serial.wallMs - serialIdeal)} above 20 × D (${ms((serial.wallMs - serialIdeal) / ROWS, 1)} a row). The forwarding floor spends ${ms(got.serialMs - serialIdeal)} with got and ${ms(plain.serialMs - serialIdeal)} with node:http: got costs ${ms(got.serialMs - plain.serialMs)} (${ms((got.serialMs - plain.serialMs) / ROWS, 1)} a row), the service's own work ${ms(serial.wallMs - got.serialMs)} (${ms((serial.wallMs - got.serialMs) / ROWS, 1)} a row: each row's outcome and the next row's \`creating\` committed before the next create leaves${engine.name === 'postgres' ? ', a round trip to PostgreSQL whose commit waits for its WAL flush (fsync on), beside the shared limiter\'s claim of a slot, another' : ', in the same process'}). ` +
          `The target ≤ ${TARGET_SERIAL} allows ${ms((TARGET_SERIAL - 1) * serialIdeal)} above 20 × D, ${ms(TARGET_SERIAL * serialIdeal - got.serialMs)} above the got floor. Each row waits D on an idle machine, so every answer wakes the directory, then the service, from idle: the node:http floor shows what those wake-ups cost here.`,
      ],
    };
  } finally {
    await sim.close();
    dir.remove();
  }
}
