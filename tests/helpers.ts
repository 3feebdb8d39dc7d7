import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { createApp } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import { buildDeps } from '../src/deps.js';
import { createLogger } from '../src/logger.js';
import { createSimulator, type Simulator, type SimulatorOptions } from '../simulator/simulator.js';
import { testEngine, testPostgresMigrated, testPostgresUrl } from './pg/engine.js';
import { createTestDatabase } from './pg/server.js';

/** Small timeouts and delays so failure paths run in milliseconds; real code, real HTTP. */
export const FAST_ENV: Record<string, string> = {
  NODE_ENV: 'test',
  LOG_LEVEL: 'error',
  UPSTREAM_TIMEOUT_MS: '1000',
  UPSTREAM_MAX_ATTEMPTS: '3',
  UPSTREAM_RETRY_BASE_MS: '5',
  UPSTREAM_RETRY_MAX_MS: '20',
  UPSTREAM_SETTLE_MS: '30',
  WARMUP_TIMEOUT_MS: '2000',
  UPSTREAM_RATE_WINDOW_MS: '60000',
  // Suites upload many files from one address; tests of the limit set their own.
  UPLOAD_RATE_PER_MIN: '10000',
};

/** A logger whose JSON lines land in `lines`, for tests that assert what was logged. */
export function memoryLogger(level = 'debug') {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      callback();
    },
  });
  const logger = createLogger(
    { LOG_LEVEL: level as Config['LOG_LEVEL'], NODE_ENV: 'production' },
    new winston.transports.Stream({ stream }),
  );
  return { logger, lines };
}

export function tempDir(): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), 'hospital-bulk-test-'));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

let closedPort: Promise<number> | undefined;

/**
 * A URL where nothing listens and nothing can start to, for as long as this test file runs:
 * the directory is down, every connection is refused (ECONNREFUSED).
 *
 * Not "a port free right now": jest runs test files in parallel workers, and another one
 * could start listening there a moment later. The port is the local end of a loopback
 * connection this process opens and holds. A connection's own port accepts no new
 * connection (the kernel answers RST, as for any port without a listener), and no one can
 * bind it while the connection lives (EADDRINUSE, port 0 never hands it out), while the
 * listener that accepted it is closed at once. Both ends are unref'd: they keep the port,
 * not the process.
 */
export function closedPortUrl(): Promise<string> {
  closedPort ??= holdClosedPort();
  return closedPort.then((port) => `http://127.0.0.1:${port}`);
}

async function holdClosedPort(): Promise<number> {
  const listener = createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const accepted = once(listener, 'connection') as Promise<[Socket]>;
  const client = connect((listener.address() as AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  const [peer] = await accepted;
  // Stops listening now; its callback would wait for the held connection to end.
  listener.close();
  for (const socket of [client, peer]) {
    socket.on('error', () => undefined);
    socket.unref();
  }
  return client.localPort!;
}

export async function startSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const sim = createSimulator({ createDelayMs: 5, rateLimits: false, ...options });
  await sim.listen();
  return sim;
}

/**
 * Where a test's history lives: a SQLite file in `dir`, or, in jest's postgres project, a
 * fresh database on the PostgreSQL server the project started: empty, or with `migrated`
 * a copy of one with every migration applied (the service's start-up then finds nothing
 * to apply, as on any start after the first). `drop` removes it.
 */
export async function testDatabase(dir: string, { migrated = false } = {}): Promise<{ env: Record<string, string>; drop: () => Promise<void> }> {
  // Set either way: DATABASE_URL wins, and tests that look for stray files look in this folder.
  const sqlite = { DATABASE_PATH: join(dir, 'history.db') };
  if (testEngine() === 'sqlite') return { env: sqlite, drop: async () => undefined };
  const database = await createTestDatabase(testPostgresUrl(), migrated ? testPostgresMigrated() : undefined);
  return { env: { ...sqlite, DATABASE_URL: database.url }, drop: database.drop };
}

/**
 * The whole service as a test sees it: the real app and dependencies, a real simulator
 * over HTTP on a random port, and the history in a SQLite file in a temp dir or in a
 * fresh PostgreSQL database, migrated (see testDatabase).
 */
export async function startStack(options: { sim?: SimulatorOptions; env?: Record<string, string> } = {}) {
  const sim = await startSimulator(options.sim);
  const dir = tempDir();
  const database = await testDatabase(dir.path, { migrated: true });
  const env: Record<string, string> = { ...FAST_ENV, HOSPITAL_API_BASE_URL: sim.url, ...database.env, ...options.env };
  const log = memoryLogger(env.LOG_LEVEL === 'error' ? 'error' : 'debug');
  const config = loadConfig(env);
  let deps = await buildDeps(config, log.logger);
  let app = createApp(deps);
  let closed = false;
  return {
    sim,
    config,
    get deps() {
      return deps;
    },
    get app() {
      return app;
    },
    logLines: log.lines,
    /** Builds a fresh app on the same database file, as a restart would. */
    async restart() {
      await deps.close();
      deps = await buildDeps(config, log.logger);
      app = createApp(deps);
    },
    /** Idempotent: a suite's afterEach may close a stack an earlier test left in its variable. */
    async close() {
      if (closed) return;
      closed = true;
      await deps.close();
      await sim.close();
      await database.drop();
      dir.remove();
    },
  };
}

export type Stack = Awaited<ReturnType<typeof startStack>>;

/** Requests the simulator received for one route, in order. */
export const requestsTo = (sim: Simulator, route: string) => sim.requests.filter((r) => r.route === route);

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: Record<string, unknown>;
}

/** Splits a text/event-stream body into its events (comments and retry lines dropped). */
export function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .map((block) => block.split('\n').filter((line) => line !== '' && !line.startsWith(':')))
    .filter((lines) => lines.some((line) => line.startsWith('data:')))
    .map((lines) => {
      const field = (name: string) => lines.find((line) => line.startsWith(`${name}:`))?.slice(name.length + 1).trim();
      return { id: field('id'), event: field('event') ?? 'message', data: JSON.parse(field('data')!) as Record<string, unknown> };
    });
}

/** What a child process printed, and how it ended: its exit code (null when a signal ended it). */
export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Collects a piped child's output until it closes. */
export async function finished(child: ChildProcess): Promise<Finished> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}
