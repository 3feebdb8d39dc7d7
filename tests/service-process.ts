/**
 * The built service (dist/src/server.js, what `npm start` runs) as a child process, for
 * tests that need a real process: SIGKILL at a chosen moment, SIGTERM and its exit code,
 * start-up recovery on the same database file. `npm test` builds first; when running jest
 * directly, run `npm run build` before.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAST_ENV } from './helpers.js';
import { testEngine, testPostgresUrl } from './pg/engine.js';
import { createTestDatabase } from './pg/server.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const SERVER_JS = join(root, 'dist/src/server.js');
const HEALTHY_WITHIN_MS = 10_000;

export interface ServiceProcess {
  url: string;
  child: ChildProcessWithoutNullStreams;
  /** stdout, one entry per line: the parsed JSON log line, or the raw text if it is not JSON. */
  logs: (Record<string, unknown> | string)[];
  stderr: () => string;
  /** Sends `signal` (no-op once exited) and returns `exited`. */
  kill(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<ServiceProcess>();


/**
 * In jest's postgres project each database file a test names stands for its own fresh
 * PostgreSQL database, the same one every time it is named again (a restart on the same
 * history). The server and its databases go when the run ends.
 */
const databases = new Map<string, Promise<string>>();
export function databaseEnv(dbPath: string): Promise<Record<string, string>> | Record<string, string> {
  if (testEngine() === 'sqlite') return { DATABASE_PATH: dbPath };
  if (!databases.has(dbPath)) databases.set(dbPath, createTestDatabase(testPostgresUrl()).then((database) => database.url));
  return databases.get(dbPath)!.then((url) => ({ DATABASE_URL: url }));
}

/**
 * Spawns the built server with a minimal environment (no variable of the caller's shell
 * leaks in): PATH, FAST_ENV, JSON logs at info, 127.0.0.1, the given database file and
 * directory URL, then `env` on top. Resolves once GET /health is 200.
 *
 * PORT=0: the server binds a port of the kernel's choosing and logs it (the `listening`
 * line's `url`), which becomes `url`. A port probed free here and handed to the child could
 * be taken in between by a test file running in another jest worker, and a /health check
 * there would then reach that file's service, not this one. A restarted service gets a
 * new port: read the URL from the new ServiceProcess.
 */
export async function startService(options: { directoryUrl: string; dbPath: string; env?: Record<string, string> }): Promise<ServiceProcess> {
  if (!existsSync(SERVER_JS)) throw new Error(`${SERVER_JS} does not exist: run \`npm run build\` first.`);
  if (options.env?.LOG_LEVEL === 'warn' || options.env?.LOG_LEVEL === 'error') {
    throw new Error(`startService reads the service's URL from its \`listening\` line, logged at info: LOG_LEVEL=${options.env.LOG_LEVEL} hides it`);
  }
  const database = await databaseEnv(options.dbPath);
  const child = spawn(process.execPath, [SERVER_JS], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      ...FAST_ENV,
      NODE_ENV: 'production',
      // Production refuses to start without API_KEY; tests that need the key set it in `env`.
      ALLOW_NO_API_KEY: 'true',
      LOG_LEVEL: 'info',
      HOST: '127.0.0.1',
      PORT: '0',
      ...database,
      HOSPITAL_API_BASE_URL: options.directoryUrl,
      ...options.env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end();

  const logs: ServiceProcess['logs'] = [];
  let partial = '';
  let listeningUrl: string | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      const entry = parseLine(line);
      logs.push(entry);
      if (typeof entry === 'object' && entry.message === 'listening' && typeof entry.url === 'string') listeningUrl ??= entry.url;
    }
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      if (partial.trim() !== '') logs.push(parseLine(partial));
      partial = '';
      resolve({ code, signal });
    });
  });
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
    live.delete(service);
  });

  const service: ServiceProcess = {
    url: '', // set from the `listening` line below
    child,
    logs,
    stderr: () => stderr,
    kill(signal) {
      if (!hasExited) child.kill(signal);
      return exited;
    },
    exited,
  };
  live.add(service);

  const deadline = Date.now() + HEALTHY_WITHIN_MS;
  for (;;) {
    if (hasExited) {
      throw new Error(`the service exited before it was healthy: ${JSON.stringify(await exited)}\nstderr: ${stderr}\nstdout: ${JSON.stringify(logs)}`);
    }
    if (listeningUrl !== undefined) {
      service.url = listeningUrl;
      if ((await healthStatus(service.url)) === 200) return service;
    }
    if (Date.now() > deadline) {
      await service.kill('SIGKILL');
      throw new Error(`the service was not healthy within ${HEALTHY_WITHIN_MS} ms\nstderr: ${stderr}\nstdout: ${JSON.stringify(logs)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** SIGKILLs every service still running and waits for each to exit: for afterEach. */
export async function killAllServices(): Promise<void> {
  await Promise.all([...live].map((service) => service.kill('SIGKILL')));
}

/** Polls `check` every 10 ms until it returns a truthy value, or fails after `timeoutMs` naming `what`. */
export async function waitUntil<T>(what: string, check: () => T | Promise<T>, timeoutMs = 5_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function parseLine(line: string): Record<string, unknown> | string {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : line;
  } catch {
    return line;
  }
}

/** GET /health on a connection of its own (agent: false), so no pooled socket outlives the check. */
function healthStatus(url: string): Promise<number | null> {
  return new Promise((resolve) => {
    const req = http.get(`${url}/health`, { agent: false, timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? null);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}
