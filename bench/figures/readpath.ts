/**
 * Figure 4 — the read path on a 10,000-batch history: requests/s and p99 latency of
 * GET /batches/:id (1,000 real ids, rotated) and GET /batches?limit=50, with autocannon
 * (10 connections, 1 s warm-up then 5 s measured), against a bare express app answering
 * {"hello":"world"} (bench/hello-server.js, plain JS under node, same express) measured the
 * same way in the same run.
 *
 * autocannon runs in this process: on this 2-core machine it has one core, the server
 * under test the other, the same for the service and the reference. To say where the
 * time goes, the run also records each server's CPU time per request (/proc/<pid>/stat),
 * loads the service's own GET /health (its middleware without the database), and times
 * the handler's parts in this process with the built modules (dist/).
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import pg from 'pg';
import { AUTH_HEADERS, HELLO_JS, ROOT, ms, percentile, processCpuMs, serviceEnv, startChild, type Child, type FigureResult } from '../lib.js';
import type { HistoryDb } from '../history-db.js';

const CONNECTIONS = 10;
const WARMUP_S = 1;
const DURATION_S = 5;
const TARGET_RATIO = 0.5;
const TARGET_P99_MS = 10;

interface Load {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  bytesPerResponse: number;
  /** CPU time of the server process per request, in µs. */
  cpuUs: number;
}

/** Runs autocannon once; latencies are collected from every response (float ms), not autocannon's integer histogram. */
function cannon(url: string, paths: () => string, seconds: number): Promise<Omit<Load, 'cpuUs'>> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    let bytes = 0;
    const errors = new Map<string, number>();
    const instance = autocannon(
      {
        url,
        connections: CONNECTIONS,
        duration: seconds,
        // The hello app ignores the header; the service needs it (API_KEY is set, as in production).
        headers: AUTH_HEADERS,
        requests: [{ method: 'GET', setupRequest: (request) => ({ ...request, path: paths() }) }],
      },
      (error: unknown, result) => {
        if (error) return reject(error instanceof Error ? error : new Error(String(error)));
        if (result.errors > 0 || result.non2xx > 0) {
          const kinds = [...errors].map(([kind, n]) => `${kind} ×${n}`).join(', ');
          return reject(new Error(`autocannon against ${url}: ${result.errors} errors (${kinds}), ${result.non2xx} non-2xx answers`));
        }
        resolve({
          rps: latencies.length / result.duration,
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          requests: latencies.length,
          bytesPerResponse: bytes / Math.max(1, latencies.length),
        });
      },
    );
    instance.on('reqError', (error: unknown) => {
      const kind = error instanceof Error ? ((error as { code?: string }).code ?? error.message) : String(error);
      errors.set(kind, (errors.get(kind) ?? 0) + 1);
    });
    instance.on('response', (_client, _status, resBytes, responseTime) => {
      latencies.push(responseTime);
      bytes += resBytes;
    });
  });
}

async function measure(server: Child, paths: () => string): Promise<Load> {
  await cannon(server.url, paths, WARMUP_S);
  const cpu0 = processCpuMs(server.pid);
  const load = await cannon(server.url, paths, DURATION_S);
  return { ...load, cpuUs: ((processCpuMs(server.pid) - cpu0) * 1000) / load.requests };
}

export async function readPath(history: HistoryDb): Promise<FigureResult> {
  const hello = await startChild({ script: HELLO_JS, env: { NODE_ENV: 'production' }, healthPath: '/' });
  let reference: Load;
  try {
    reference = await measure(hello, () => '/');
  } finally {
    await hello.stop();
  }

  // No directory is needed to read the history: point it at a closed port.
  const service = await startChild({ label: 'read', env: serviceEnv('http://127.0.0.1:9', history.database) });
  const ids = history.ids.filter((_, i) => i % 10 === 0);
  let byId: Load;
  let list: Load;
  let health: Load;
  try {
    let next = 0;
    byId = await measure(service, () => `/batches/${ids[next++ % ids.length]!}`);
    list = await measure(service, () => '/batches?limit=50');
    health = await measure(service, () => '/health');
  } finally {
    await service.stop();
  }
  const parts = await handlerParts(history, ids);

  const row = (figure: string, load: Load) => [
    {
      figure: `4. ${figure}: requests/s`,
      measured: `${load.rps.toFixed(0)} req/s`,
      reference: `hello ${reference.rps.toFixed(0)} req/s`,
      ratio: (load.rps / reference.rps).toFixed(3),
      target: `≥ ${TARGET_RATIO}`,
      pass: load.rps / reference.rps >= TARGET_RATIO,
    },
    {
      figure: `4. ${figure}: p99 latency`,
      measured: ms(load.p99, 2),
      reference: `hello ${ms(reference.p99, 2)}`,
      ratio: (load.p99 / reference.p99).toFixed(2),
      target: `≤ ${TARGET_P99_MS} ms`,
      pass: load.p99 <= TARGET_P99_MS,
    },
  ];
  const describe = (name: string, load: Load) =>
    `${name}: ${load.rps.toFixed(0)} req/s, p50 ${ms(load.p50, 2)}, p99 ${ms(load.p99, 2)}, ${load.cpuUs.toFixed(0)} µs of server CPU per request, ${load.bytesPerResponse.toFixed(0)} B per response`;
  return {
    rows: [...row('GET /batches/:id', byId), ...row('GET /batches?limit=50', list)],
    formulas: [
      `read path: autocannon in the benchmark process, ${CONNECTIONS} connections, ${WARMUP_S} s warm-up (discarded) then ${DURATION_S} s; requests/s = 2xx responses ÷ duration; p99 = 99th percentile of every response's latency; ratio = service requests/s ÷ the bare express app's (bench/hello-server.js, GET / → {"hello":"world"}, run with node, not tsx); the service runs on a history of ${history.ids.length} batches × 20 rows, with API_KEY set (every request sends the key).`,
    ],
    notes: [
      `read path, measured: ${describe('hello', reference)}; ${describe('service GET /health (middleware only, no database)', health)}; ${describe('GET /batches/:id (1,000 ids rotated)', byId)}; ${describe('GET /batches?limit=50', list)}.`,
    ],
    analysis: [
      `read path, where a GET /batches/:id goes: the service spends ${byId.cpuUs.toFixed(0)} µs of CPU per request where the hello app spends ${reference.cpuUs.toFixed(0)} µs ` +
        `(both servers are CPU-bound here, so requests/s follow CPU per request: a ratio of ${TARGET_RATIO} needs about ${(reference.cpuUs / TARGET_RATIO).toFixed(0)} µs). ` +
        `Of the ${byId.cpuUs.toFixed(0)} µs: the service's middleware and a small response (its own GET /health) ${health.cpuUs.toFixed(0)} µs; ` +
        `store.findReport, the batch with its rows and audit in one snapshot (src/db/${history.engine}/store.ts), ${parts.drizzleUs.toFixed(0)} µs of wall time (timed in this process with dist/; two SELECTs, the batch and its rows, on ${parts.rawName} take ${parts.preparedUs.toFixed(0)} µs); ` +
        `toReport + JSON.stringify ${parts.reportUs.toFixed(0)} µs; ` +
        `the rest, ≈ ${Math.max(0, byId.cpuUs - health.cpuUs - parts.drizzleUs - parts.reportUs).toFixed(0)} µs, is (per a CPU profile taken while writing this benchmark) mostly writing the ${(byId.bytesPerResponse / 1024).toFixed(1)} kB answer (writev) and GC, then ETag hashing, the API-key check and routing. ` +
        `GET /batches?limit=50 (${list.cpuUs.toFixed(0)} µs): listBatches(51) ${parts.listDrizzleUs.toFixed(0)} µs vs ${parts.listPreparedUs.toFixed(0)} µs on ${parts.rawName}, toSummary × 50 + JSON.stringify ${parts.listJsonUs.toFixed(0)} µs, a ${(list.bytesPerResponse / 1024).toFixed(1)} kB answer to write. ` +
        `p99 follows from the same cost: with ${CONNECTIONS} connections always busy a request waits behind ~${CONNECTIONS - 1} others (p50 ${ms(byId.p50, 1)} ≈ ${CONNECTIONS} ÷ ${byId.rps.toFixed(0)} req/s). ` +
        `Formatting one winston info line costs ${parts.logUs.toFixed(0)} µs; requestLog skips it when info is off (as here, LOG_LEVEL=warn), so a production service at LOG_LEVEL=info pays that much more per request.`,
    ],
  };
}

/**
 * Times the parts of GET /batches/:id with the built code, in this process, on the same
 * database: the store's read (findReport: the batch, its rows and its audit in one snapshot),
 * the batch and its rows SELECTed through statements prepared once (better-sqlite3, or pg named), toReport + JSON.stringify, and
 * the request log line that requestLog writes at `info` while LOG_LEVEL is warn.
 */
async function handlerParts(
  history: HistoryDb,
  ids: string[],
): Promise<{ rawName: string; drizzleUs: number; preparedUs: number; reportUs: number; logUs: number; listDrizzleUs: number; listPreparedUs: number; listJsonUs: number }> {
  const dist = (path: string) => pathToFileURL(join(ROOT, 'dist/src', path)).href;
  const { openStore } = (await import(dist('db/index.js'))) as typeof import('../../src/db/index.js');
  const { toReport, toSummary } = (await import(dist('http/presenter.js'))) as typeof import('../../src/http/presenter.js');
  const { createLogger } = (await import(dist('logger.js'))) as typeof import('../../src/logger.js');
  const { Writable } = await import('node:stream');
  const winston = (await import('winston')).default;

  const N = 5_000;
  const time = (fn: (i: number) => unknown): number => {
    for (let i = 0; i < 500; i++) fn(i); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < N; i++) fn(i);
    return ((performance.now() - t0) * 1000) / N;
  };
  const timeAsync = async (fn: (i: number) => Promise<unknown>): Promise<number> => {
    for (let i = 0; i < 500; i++) await fn(i); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await fn(i);
    return ((performance.now() - t0) * 1000) / N;
  };
  const id = (i: number) => ids[i % ids.length]!;

  const store = await openStore(history.database);
  const raw = rawQueries(history.database);
  try {
    const drizzleUs = await timeAsync((i) => store.findReport(id(i)));
    const preparedUs = await timeAsync((i) => Promise.all([raw.batch(id(i)), raw.rows(id(i))]));
    const reports = await Promise.all(ids.slice(0, 100).map(async (batchId) => (await store.findReport(batchId))!));
    const reportUs = time((i) => {
      const r = reports[i % reports.length]!;
      return JSON.stringify(toReport(r.batch, r.rows));
    });
    // The request line requestLog logs for every request, with a logger at warn (production
    // format) writing to a sink: winston formats it (timestamp + JSON) before dropping it.
    const sink = new winston.transports.Stream({ stream: new Writable({ write: (_c, _e, cb) => cb() }) });
    const logger = createLogger({ LOG_LEVEL: 'warn', NODE_ENV: 'production' }, sink);
    const logUs = time((i) => logger.info('request', { request_id: 'b7e2c1de-0000-4000-8000-000000000000', method: 'GET', path: `/batches/${id(i)}`, status: 200, duration_ms: 1.234 }));
    // GET /batches?limit=50 reads 51 batches (one more, to know whether there is a next page).
    const listDrizzleUs = await timeAsync(() => store.listBatches(51));
    const listPreparedUs = await timeAsync(() => raw.list(51));
    const page = (await store.listBatches(51)).slice(0, 50);
    const listJsonUs = time(() => JSON.stringify({ batches: page.map(toSummary), next_cursor: 'x' }));
    return { rawName: raw.name, drizzleUs, preparedUs, reportUs, logUs, listDrizzleUs, listPreparedUs, listJsonUs };
  } finally {
    await raw.close();
    await store.close();
  }
}

/** The same reads as the store's, without drizzle: better-sqlite3 statements, or pg named statements. */
function rawQueries(database: HistoryDb['database']) {
  const sqlText = {
    batch: 'select * from batches where id = $1',
    rows: 'select * from batch_rows where batch_id = $1 order by row',
    list: 'select * from batches order by created_at desc, id desc limit $1',
  };
  if (database.DATABASE_URL === undefined) {
    const db = new Database(database.DATABASE_PATH, { readonly: true });
    const prepared = Object.fromEntries(Object.entries(sqlText).map(([k, text]) => [k, db.prepare(text.replace('$1', '?'))])) as Record<keyof typeof sqlText, Database.Statement>;
    return {
      name: 'raw better-sqlite3 statements',
      batch: async (id: string) => prepared.batch.get(id),
      rows: async (id: string) => prepared.rows.all(id),
      list: async (n: number) => prepared.list.all(n),
      close: async () => db.close(),
    };
  }
  const pool = new pg.Pool({ connectionString: database.DATABASE_URL, max: 10 });
  const query = (name: keyof typeof sqlText, value: unknown) => pool.query({ name, text: sqlText[name], values: [value] });
  return {
    name: 'raw pg named statements (same pool size)',
    batch: (id: string) => query('batch', id),
    rows: (id: string) => query('rows', id),
    list: (n: number) => query('list', n),
    close: () => pool.end(),
  };
}
