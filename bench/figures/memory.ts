/**
 * Figure 5 — memory and start-up.
 *
 * memory: RSS (/proc/<pid>/status VmRSS) of the service after 1,000 uploads of 1 row each,
 * 4 at a time, simulator create delay 2 ms and no rate limits; the service keeps
 * UPSTREAM_CREATE_RATE_PER_MIN=30 (its cap) with UPSTREAM_RATE_WINDOW_MS=100, so 30 creates
 * per 100 ms are plenty. Reference: the same process's RSS right after start-up.
 *
 * start-up: spawn → first 200 from GET /health, on the 10,000-batch history; median of 3.
 * Reference: the bare express app (bench/hello-server.js) measured the same way, median of 3.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createSimulator } from '../../simulator/simulator.js';
import { HELLO_JS, MEM_PROBE_JS, ROOT, assertCompleted, hospitalsCsv, mb, median, ms, serviceEnv, sleep, startChild, tempDir, upload, type BenchEngine, type Child, type FigureResult } from '../lib.js';
import type { HistoryDb } from '../history-db.js';

const UPLOADS = 1_000;
const PARALLEL = 4;
const TARGET_RSS_MB = 150;
const STARTS = 3;
const TARGET_STARTUP_MS = 1_000;

export async function memory(engine: BenchEngine): Promise<FigureResult> {
  const dir = tempDir('memory');
  const sim = createSimulator({ createDelayMs: 2, rateLimits: false });
  await sim.listen();
  // --expose-gc and the probe only add a SIGUSR2 handler, used once the figure is read.
  const service = await startChild({
    label: 'memory',
    nodeArgs: ['--expose-gc', '--import', MEM_PROBE_JS],
    env: serviceEnv(sim.url, await engine.freshDatabase(dir.path, 'memory'), {
      UPSTREAM_RATE_WINDOW_MS: '100',
      UPSTREAM_CREATE_RATE_PER_MIN: '30',
      // The per-client upload limit (10 a minute by default) would refuse all but the first few.
      UPLOAD_RATE_PER_MIN: '1000000',
    }),
  });
  try {
    await sleep(500);
    const baseline = service.memoryKb();
    const checkpoints: { uploads: number; rssKb: number }[] = [];
    let sent = 0;
    let done = 0;
    const t0 = performance.now();
    const worker = async () => {
      while (sent < UPLOADS) {
        sent++;
        assertCompleted(await upload(service.url, hospitalsCsv(1)), 1, 'memory upload');
        done++;
        if (done % 250 === 0) checkpoints.push({ uploads: done, rssKb: service.memoryKb().rssKb });
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    const elapsedMs = performance.now() - t0;
    const after = service.memoryKb();
    await sleep(1_000);
    const settled = service.memoryKb();
    const heap = await probe(service);
    const leak = await limiterRetention();
    const rssMb = after.rssKb / 1024;
    return {
      rows: [
        {
          figure: `5a. memory: RSS after ${UPLOADS} uploads (1 row each, ${PARALLEL} at a time)`,
          measured: mb(after.rssKb),
          reference: `after start ${mb(baseline.rssKb)}`,
          ratio: (after.rssKb / baseline.rssKb).toFixed(2),
          target: `≤ ${TARGET_RSS_MB} MB`,
          pass: rssMb <= TARGET_RSS_MB,
        },
      ],
      formulas: [
        `memory: VmRSS of the service process from /proc/<pid>/status right after the ${UPLOADS}th upload answered; reference = its VmRSS 0.5 s after start-up; ratio = after ÷ reference.`,
      ],
      notes: [
        `memory: ${UPLOADS} uploads in ${ms(elapsedMs)} (${((UPLOADS / elapsedMs) * 1000).toFixed(0)} uploads/s); RSS after start ${mb(baseline.rssKb)}, ` +
          checkpoints.map((c) => `after ${c.uploads}: ${mb(c.rssKb)}`).join(', ') +
          `, 1 s later ${mb(settled.rssKb)}; peak (VmHWM) ${mb(settled.hwmKb)}.`,
      ],
      analysis: [
        heap
          ? `memory: what the RSS is made of (process.memoryUsage() in the service, via bench/mem-probe.js): V8 heap ${mib(heap.before.heapTotal)} reserved, ${mib(heap.before.heapUsed)} used, ` +
            `but only ${mib(heap.after.heapUsed)} live after a full GC (${mib(heap.after.heapTotal)} reserved, RSS ${mib(heap.after.rss)} then); outside the JS heap (code, native modules, SQLite, malloc): ≈ ${mib(heap.before.rss - heap.before.heapTotal)}. ` +
            `At start-up the RSS is already ${mb(baseline.rssKb)} (the bare express app: see start-up). So the growth over the uploads is V8 enlarging its heap with garbage it has not collected yet ` +
            `(objects that outlive two scavenges, e.g. those held across a directory round trip, are promoted to old space and wait for a mark-compact, which V8 delays on a machine with this much RAM), not live data; ` +
            `the RSS does not fall right after the GC because the freed pages stay mapped.`
          : 'memory: the probe did not answer; no heap breakdown.',
        `memory: ${leak}`,
      ],
    };
  } finally {
    await service.stop();
    await sim.close();
    dir.remove();
  }
}

const mib = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(1)} MB`;

type Usage = Record<'rss' | 'heapTotal' | 'heapUsed' | 'external', number>;

/** Asks bench/mem-probe.js (SIGUSR2) for memoryUsage() before and after a full GC. */
async function probe(service: Child): Promise<{ before: Usage; after: Usage } | null> {
  process.kill(service.pid, 'SIGUSR2');
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    const line = /^MEMPROBE (.+)$/m.exec(service.output())?.[1];
    if (line) return JSON.parse(line) as { before: Usage; after: Usage };
  }
  return null;
}

/**
 * The built RateLimiter, driven in this process the way one upload drives it: per-batch
 * keys for GET /hospitals/batch/:id and PATCH …/activate, acquired once and released.
 * Counts the keys it still holds afterwards and the heap they take.
 */
async function limiterRetention(): Promise<string> {
  const { RateLimiter } = (await import(pathToFileURL(join(ROOT, 'dist/src/directory/limiter.js')).href)) as typeof import('../../src/directory/limiter.js');
  const batches = 20_000;
  const limiter = new RateLimiter(100);
  // tsx gives no --expose-gc: turn it on now and take gc() from a fresh context.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (() => void) | undefined;
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  for (let b = 0; b < batches; b++) {
    const id = `00000000-0000-4000-8000-${String(b).padStart(12, '0')}`;
    for (const path of [`/hospitals/batch/${id}`, `/hospitals/batch/${id}/activate`]) {
      const release = await limiter.acquire(`50:${path}`, 50);
      release();
    }
  }
  await sleep(150); // every slot is now past its window
  gc?.();
  const heapAfter = process.memoryUsage().heapUsed;
  const kept = (limiter as unknown as { slots: Map<string, unknown> }).slots.size;
  const perBatch = gc ? ` ≈ ${((heapAfter - heapBefore) / batches).toFixed(0)} B of heap per batch` : '';
  return (
    `src/directory/limiter.ts RateLimiter keys (one per batch for GET /hospitals/batch/:id and one for PATCH …/activate) are forgotten once spent ` +
    `(a sweep runs whenever it holds more than 64): after ${batches} batches, all windows expired, it held ${kept} keys${perBatch}.`
  );
}

export async function startup(history: HistoryDb): Promise<FigureResult> {
  const serviceMs: number[] = [];
  const helloMs: number[] = [];
  const serviceRssKb: number[] = [];
  const helloRssKb: number[] = [];
  for (let k = 0; k < STARTS; k++) {
    const service = await startChild({ label: 'startup', env: serviceEnv('http://127.0.0.1:9', history.database) });
    serviceMs.push(service.startupMs);
    serviceRssKb.push(service.memoryKb().rssKb);
    await service.stop();
    const hello = await startChild({ script: HELLO_JS, env: { NODE_ENV: 'production' }, healthPath: '/' });
    helloMs.push(hello.startupMs);
    helloRssKb.push(hello.memoryKb().rssKb);
    await hello.stop();
  }
  const value = median(serviceMs);
  const reference = median(helloMs);
  return {
    rows: [
      {
        figure: `5b. start-up: spawn → 200 from GET /health, ${history.ids.length}-batch history (median of ${STARTS})`,
        measured: ms(value),
        reference: `hello ${ms(reference)}`,
        ratio: (value / reference).toFixed(2),
        target: `≤ ${TARGET_STARTUP_MS} ms`,
        pass: value <= TARGET_STARTUP_MS,
      },
    ],
    formulas: [
      `start-up: time from spawn() of \`node dist/src/server.js\` to the first 200 from GET /health (polled every ~3 ms), on the ${history.ids.length}-batch history (${history.sizeMb.toFixed(0)} MB); median of ${STARTS}; reference = the same for the bare express app.`,
    ],
    notes: [
      `start-up: service ${serviceMs.map((v) => ms(v)).join(', ')}; hello ${helloMs.map((v) => ms(v)).join(', ')}. RSS at the first 200: service ${mb(median(serviceRssKb))}, hello ${mb(median(helloRssKb))} (medians).`,
    ],
  };
}
