/**
 * Figure 6 — lost answers: 3 rows against a directory that takes D = 1000 ms per create,
 * with UPSTREAM_TIMEOUT_MS = 500, so every create's answer is lost (it times out) and the
 * row lands half a second later. Row by row and at UPSTREAM_CONCURRENCY=20: wall time ÷
 * (3 × D), and how many hospitals beyond the 3 rows the directory holds (duplicates).
 *
 * Simulator rate limits off; each run on a fresh service and a fresh database of the engine
 * measured, after a 1-row warm-up at D=5 ms.
 */
import { createSimulator, type Simulator } from '../../simulator/simulator.js';
import { assertCompleted, batchOf, hospitalsCsv, ms, serviceEnv, startChild, tempDir, upload, type BenchEngine, type DatabaseEnv, type FigureResult } from '../lib.js';

const ROWS = 3;
const DELAY_MS = 1000;
const TIMEOUT_MS = 500;
const TARGETS = { 1: 1.5, 20: 1.2 } as const;

async function run(sim: Simulator, database: DatabaseEnv, concurrency: 1 | 20) {
  const env = serviceEnv(sim.url, database, { UPSTREAM_CONCURRENCY: String(concurrency), UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS) });
  const service = await startChild({ label: `lost answers, concurrency ${concurrency}`, env });
  try {
    sim.setCreateDelay(5);
    assertCompleted(await upload(service.url, hospitalsCsv(1)), 1, `lost answers ${concurrency} warm-up`);
    sim.setCreateDelay(DELAY_MS);
    const from = sim.requests.length;
    const result = await upload(service.url, hospitalsCsv(ROWS));
    assertCompleted(result, ROWS, `lost answers, concurrency ${concurrency}`);
    // The directory stores abandoned creates without answering them: wait for them to land before counting.
    await new Promise((resolve) => setTimeout(resolve, DELAY_MS));
    const batchId = result.report.batch_id!;
    const log = sim.requests.slice(from);
    const stored = sim.hospitals().filter((h) => h.creation_batch_id === batchId).length;
    return {
      wallMs: result.wallMs,
      creates: log.filter((r) => r.route === 'create').length,
      reads: log.filter((r) => r.route === 'batch' && batchOf(r) === batchId).length,
      duplicates: stored - ROWS,
    };
  } finally {
    await service.stop();
  }
}

export async function lost(engine: BenchEngine): Promise<FigureResult> {
  const dir = tempDir('lost');
  const sim = createSimulator({ createDelayMs: DELAY_MS, rateLimits: false });
  await sim.listen();
  try {
    const serial = await run(sim, await engine.freshDatabase(dir.path, 'serial'), 1);
    sim.reset();
    const parallel = await run(sim, await engine.freshDatabase(dir.path, 'parallel'), 20);
    const ideal = ROWS * DELAY_MS;
    const rows = ([[1, serial], [20, parallel]] as const).flatMap(([concurrency, r]) => [
      {
        figure: `6${concurrency === 1 ? 'a' : 'b'}. lost answers: ${ROWS} rows, D=${DELAY_MS} ms, timeout ${TIMEOUT_MS} ms, UPSTREAM_CONCURRENCY=${concurrency}`,
        measured: ms(r.wallMs),
        reference: `${ROWS} × D = ${ms(ideal)}`,
        ratio: (r.wallMs / ideal).toFixed(3),
        target: `≤ ${TARGETS[concurrency]}`,
        pass: r.wallMs / ideal <= TARGETS[concurrency],
      },
      {
        figure: `6${concurrency === 1 ? 'a' : 'b'}. lost answers: duplicates, UPSTREAM_CONCURRENCY=${concurrency}`,
        measured: String(r.duplicates),
        reference: `${r.creates} creates sent`,
        ratio: '-',
        target: '= 0',
        pass: r.duplicates === 0,
      },
    ]);
    return {
      rows,
      formulas: [
        `lost answers: ratio = client wall time of a ${ROWS}-row upload whose every create times out (UPSTREAM_TIMEOUT_MS=${TIMEOUT_MS}) and is stored by the directory ${DELAY_MS} ms after it arrived ÷ (${ROWS} × D); duplicates = hospitals of the batch in the directory, ${DELAY_MS} ms after the report, minus ${ROWS}.`,
      ],
      notes: [
        `lost answers, row by row: ${ms(serial.wallMs)}, ${serial.creates} creates, ${serial.reads} reads of the batch (settling and activation), ${serial.duplicates} duplicates; at concurrency 20: ${ms(parallel.wallMs)}, ${parallel.creates} creates, ${parallel.reads} reads, ${parallel.duplicates} duplicates.`,
      ],
      analysis: [
        `lost answers: no row waits for a lost one: the creates leave ${TIMEOUT_MS} ms apart row by row (all at once at 20), and the lost rows are settled together by reading the batch at ${250} ms, then growing, intervals until each create has landed (${ms(DELAY_MS - TIMEOUT_MS)} after its loss here), instead of sleeping UPSTREAM_SETTLE_MS (8 s) per row.`,
      ],
    };
  } finally {
    await sim.close();
    dir.remove();
  }
}
