/**
 * Figure — two-instance pacing: the `pacing` figure (figures/pacing.ts) with its two 20-row
 * uploads sent to two service processes on ONE PostgreSQL database (started by the bench,
 * tests/pg/server.ts), so the directory's limit is kept by the shared limiter
 * (src/db/postgres/pacing.ts) instead of one process's memory. The window is W = 3 s on both
 * sides (short enough to run in seconds, shorter than the 4 s idle-socket timeout of the
 * transport, so no second-wave create meets a closing keep-alive connection).
 *
 * The floor is the pacing figure's: wake + d1 + W + d2 + read + activate, from the
 * simulator's log; the shared limiter holds a slot from before its send until its answer
 * plus W, on the database's clock, exactly as the in-process one does.
 */
import { createSimulator } from '../../simulator/simulator.js';
import { createTestDatabase, startPostgres } from '../../tests/pg/server.js';
import {
  assertCompleted,
  createFailures,
  hospitalsCsv,
  median,
  ms,
  serviceEnv,
  sleep,
  startChild,
  tempDir,
  twoWaveUploads,
  upload,
  type FigureResult,
} from '../lib.js';

const ROWS = 20;
const DELAY_MS = 100;
const WINDOW_MS = 3000;
const TARGET_RATIO = 1.1;

export async function instances(): Promise<FigureResult> {
  const dir = tempDir('instances');
  const postgres = await startPostgres();
  const sim = createSimulator({ createDelayMs: DELAY_MS, rateLimits: { windowMs: WINDOW_MS } });
  await sim.listen();
  const services: Awaited<ReturnType<typeof startChild>>[] = [];
  try {
    const database = await createTestDatabase(postgres.url);
    const env = (name: string) =>
      serviceEnv(sim.url, { DATABASE_PATH: `${dir.path}/unused.db`, DATABASE_URL: database.url }, {
        INSTANCE_ID: name,
        UPSTREAM_CONCURRENCY: '20',
        UPSTREAM_RATE_WINDOW_MS: String(WINDOW_MS),
      });
    // One after the other: the first one migrates the database.
    services.push(await startChild({ label: 'instance a', env: env('a') }));
    services.push(await startChild({ label: 'instance b', env: env('b') }));
    const [a, b] = services as [(typeof services)[0], (typeof services)[0]];

    // Warm both (connections, pools, the directory), then let the warm-up creates leave every window.
    assertCompleted(await upload(a.url, hospitalsCsv(1)), 1, 'instances warm-up a');
    assertCompleted(await upload(b.url, hospitalsCsv(1)), 1, 'instances warm-up b');
    await sleep(WINDOW_MS + 500);

    const { results, totalMs, count429, creates, first, second, wake, d1, d2, read, activate, floorMs, ratio, secondLag, sentAt, doneAt, lastAnswer } =
      await twoWaveUploads(sim, [a.url, b.url], ROWS, WINDOW_MS, 'instances');
    const byInstance = (batchIds: (string | undefined)[]) =>
      batchIds.map((id) => first.filter((r) => (r.body as { creation_batch_id?: string }).creation_batch_id === id).length);
    const [firstOfA, firstOfB] = byInstance(results.map((r) => r.report.batch_id));
    const failedCreates = services.flatMap((service) => createFailures(service.output()));
    const spreadMs = first.at(-1)!.receivedAt - first[0]!.receivedAt;
    return {
      rows: [
        {
          figure: `3c. two-instance pacing: 429s seen by the simulator (2 instances × 20 rows at once, 30/W, W=${WINDOW_MS / 1000} s)`,
          measured: String(count429),
          reference: `${creates.length} creates sent`,
          ratio: '-',
          target: '= 0',
          pass: count429 === 0,
        },
        {
          figure: `3d. two-instance pacing: total time ÷ the limiter's floor (D=${DELAY_MS} ms, PostgreSQL)`,
          measured: ms(totalMs),
          reference: `floor ${ms(floorMs)}`,
          ratio: ratio.toFixed(3),
          target: `≤ ${TARGET_RATIO}`,
          pass: ratio <= TARGET_RATIO,
        },
      ],
      formulas: [
        `two-instance pacing: floor = wake + d1 + W + d2 + read + activate = ${wake} + ${d1} + ${WINDOW_MS} + ${d2} + ${read} + ${activate} = ${floorMs} ms, as in the pacing figure, with the two uploads sent to two service processes on one PostgreSQL database (src/db/postgres/pacing.ts holds a slot from before its send until its answer + W, on the database's clock).`,
      ],
      notes: [
        `two-instance pacing: the first wave of ${first.length} creates held ${firstOfA} of instance a's batch and ${firstOfB} of instance b's; the ${second.length} second-wave creates left median ${ms(median(secondLag))} (max ${ms(Math.max(...secondLag))}) after "k-th first-wave answer + W" (a release NOTIFYs the other instance; each waiter sleeps until the slot's free_at on the database's clock); the first wave spread over ${ms(spreadMs)}; ${ms(first[0]!.receivedAt - sentAt)} from the client's send to the first create, ${ms(doneAt - lastAnswer)} from the last simulator answer to the second report.`,
      ],
      analysis: [
        failedCreates.length === 0
          ? `two-instance pacing: no create failed or was retried; ${ms(totalMs - floorMs)} above the floor: ${ms(first[0]!.receivedAt - sentAt)} before the first create, the first wave spread over ${ms(spreadMs)} (each instance claims the slots of every request queued in it in one statement, but the two services schedule 20 rows each, and the 10th earliest first-wave answer moves with it), the second wave leaving median ${ms(median(secondLag))} after its slot freed, and ${ms(doneAt - lastAnswer)} of batch read, activation, report.`
          : `two-instance pacing: ${failedCreates.length} create(s) failed on their first attempt (${failedCreates.join('; ')}) and were sent again.`,
      ],
    };
  } finally {
    await Promise.all(services.map((service) => service.stop()));
    await sim.close();
    await postgres.stop();
    dir.remove();
  }
}
