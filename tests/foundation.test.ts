/**
 * The foundation as a user meets it, without mocks: configuration and its errors, the real
 * entry point refusing bad settings, /health, problem JSON for unknown routes, bad queries
 * and unexpected errors, and request ids in headers and in the access log.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { testEngine } from './pg/engine.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { createLifecycle } from '../src/lifecycle.js';
import { memoryLogger, startStack, tempDir, type Stack } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const PROBLEM_JSON = /^application\/problem\+json/;

function configErrorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  // toMatchObject, not toEqual: a new setting must not break this test (deploy.test.ts checks it is documented).
  test('when nothing is set, then each setting has its documented default', () => {
    expect(loadConfig({})).toMatchObject({
      NODE_ENV: 'development',
      HOST: '0.0.0.0',
      PORT: 3000,
      LOG_LEVEL: 'info',
      DATABASE_PATH: './data/hospital-bulk.db',
      HOSPITAL_API_BASE_URL: 'https://hospital-directory.onrender.com',
      UPSTREAM_TIMEOUT_MS: 90_000,
      UPSTREAM_MAX_ATTEMPTS: 3,
      UPSTREAM_RETRY_BASE_MS: 2_000,
      UPSTREAM_RETRY_MAX_MS: 30_000,
      UPSTREAM_SETTLE_MS: 8_000,
      WARMUP_TIMEOUT_MS: 120_000,
      UPSTREAM_CREATE_RATE_PER_MIN: 30,
      UPSTREAM_RATE_WINDOW_MS: 60_000,
      CIRCUIT_FAILURE_THRESHOLD: 3,
      ON_FAILURE: 'keep',
      SHUTDOWN_GRACE_MS: 10_000,
      MAX_ROWS: 20,
      MAX_UPLOAD_BYTES: 1_048_576,
    });
  });

  test('when values are set as strings, then numbers come out as numbers', () => {
    const config = loadConfig({ PORT: '8080', MAX_ROWS: '5', LOG_LEVEL: 'debug', HOSPITAL_API_BASE_URL: 'http://localhost:9000' });
    expect(config).toMatchObject({ PORT: 8080, MAX_ROWS: 5, LOG_LEVEL: 'debug', HOSPITAL_API_BASE_URL: 'http://localhost:9000' });
  });

  test('when a variable is set to the empty string, then its default is used', () => {
    const config = loadConfig({ PORT: '', LOG_LEVEL: '', HOSPITAL_API_BASE_URL: '', MAX_ROWS: '' });
    expect(config).toMatchObject({ PORT: 3000, LOG_LEVEL: 'info', HOSPITAL_API_BASE_URL: 'https://hospital-directory.onrender.com', MAX_ROWS: 20 });
  });

  test.each([
    ['PORT', 'abc', /whole number/],
    ['PORT', '70000', /at most 65535/],
    ['HOSPITAL_API_BASE_URL', 'ftp://x', /http\(s\) URL/],
    ['LOG_LEVEL', 'loud', /"error".*"warn".*"info".*"debug"/],
    ['MAX_ROWS', '1001', /at most 1000/],
    ['UPSTREAM_TIMEOUT_MS', '-5', /at least 1/],
  ])('when %s=%s, then ConfigError names the variable and what is allowed', (name, value, allowed) => {
    const error = configErrorOf({ [name]: value });
    expect(error.message).toContain(`${name}=${JSON.stringify(value)}`);
    expect(error.message).toMatch(allowed);
  });

  test('when several variables are bad, then one ConfigError names all of them', () => {
    const { message } = configErrorOf({ PORT: 'abc', LOG_LEVEL: 'loud', MAX_ROWS: '0' });
    expect(message).toMatch(/PORT=/);
    expect(message).toMatch(/LOG_LEVEL=/);
    expect(message).toMatch(/MAX_ROWS=.*at least 1/);
  });
});

describe('createLogger', () => {
  test('when a line is below LOG_LEVEL, then it is not written; at or above it, it is, one JSON line with its fields', () => {
    const { logger, lines } = memoryLogger('warn');

    logger.info('batch started', { batch_id: 'b1' });
    logger.debug('detail');
    logger.warn('row failed', { batch_id: 'b1', row: 3 });
    logger.error('batch crashed', { batch_id: 'b1' });

    expect(lines).toEqual([
      { level: 'warn', message: 'row failed', batch_id: 'b1', row: 3, timestamp: expect.any(String) },
      { level: 'error', message: 'batch crashed', batch_id: 'b1', timestamp: expect.any(String) },
    ]);
  });
});

describe('createLifecycle', () => {
  test('when a batch starts while the stop is waiting, then stop() waits for that one too', async () => {
    const lifecycle = createLifecycle();
    const ended: string[] = [];
    const later = (ms: number, name: string) => new Promise<void>((resolve) => setTimeout(() => resolve(void ended.push(name)), ms));
    lifecycle.track(later(50, 'running at the signal'));

    const stopped = lifecycle.stop().then(() => ended.push('stop resolved'));
    // Admitted a moment after the signal (an upload whose admission was in flight).
    lifecycle.track(later(150, 'started while stopping'));
    await stopped;

    expect(lifecycle.stopping).toBe(true);
    expect(ended).toEqual(['running at the signal', 'started while stopping', 'stop resolved']);
  });
});

describe('secure by default', () => {
  const KEY = 'k3y-for-tests-0123456789';

  test('when NODE_ENV=production and API_KEY is unset, then ConfigError names API_KEY and the opt-out ALLOW_NO_API_KEY=true', () => {
    const { message } = configErrorOf({ NODE_ENV: 'production' });

    expect(message).toMatch(/API_KEY is not set/);
    expect(message).toContain('ALLOW_NO_API_KEY=true');
  });

  test('when NODE_ENV=production with API_KEY, or with ALLOW_NO_API_KEY=true, then the configuration is accepted', () => {
    expect(loadConfig({ NODE_ENV: 'production', API_KEY: KEY })).toMatchObject({ API_KEY: KEY, ALLOW_NO_API_KEY: false });
    expect(loadConfig({ NODE_ENV: 'production', ALLOW_NO_API_KEY: 'true' })).toMatchObject({ ALLOW_NO_API_KEY: true });
    expect(loadConfig({ NODE_ENV: 'development' }).API_KEY).toBeUndefined();
  });

  test('when ALLOW_NO_API_KEY is neither true nor false, then ConfigError names it', () => {
    expect(configErrorOf({ ALLOW_NO_API_KEY: 'yes' }).message).toContain('ALLOW_NO_API_KEY="yes": must be true or false');
  });

  test('when API_KEY is too short, then the error names it and its length but never prints its value', () => {
    const secret = 'hunter2-secret';

    const { message } = configErrorOf({ API_KEY: secret });

    expect(message).toContain('API_KEY=<hidden, 14 characters>: must be at least 16 characters');
    expect(message).not.toContain(secret);
    expect(message).not.toContain('hunter2');
  });

  test('when a bad URL carries a password, then the error shows the URL with the password replaced', () => {
    const { message } = configErrorOf({ HOSPITAL_API_BASE_URL: 'ftp://admin:pa ss-w0rd@db.internal/x' });

    expect(message).toContain('HOSPITAL_API_BASE_URL="ftp://admin:***@db.internal/x": must be an http(s) URL');
    expect(message).not.toContain('pa ss-w0rd');
  });

  test('when VALIDATE_RATE_PER_MIN is unset, then dry runs get 60 a minute, apart from UPLOAD_RATE_PER_MIN', () => {
    expect(loadConfig({})).toMatchObject({ VALIDATE_RATE_PER_MIN: 60, UPLOAD_RATE_PER_MIN: 10 });
    expect(configErrorOf({ VALIDATE_RATE_PER_MIN: '0' }).message).toMatch(/VALIDATE_RATE_PER_MIN="0": must be at least 1/);
  });

  test('when the entry point starts with NODE_ENV=production and no API_KEY, then it exits 1 naming API_KEY and ALLOW_NO_API_KEY, and opens nothing', async () => {
    const dir = tempDir();
    try {
      const databasePath = join(dir.path, 'refused.db');
      const child = spawn(join(root, 'node_modules/.bin/tsx'), ['src/server.ts'], {
        cwd: root,
        env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', PORT: '0', DATABASE_PATH: databasePath },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const [code] = (await once(child, 'exit')) as [number | null];
      clearTimeout(killer);

      expect(code).toBe(1);
      expect(stderr).toMatch(/API_KEY is not set/);
      expect(stderr).toContain('ALLOW_NO_API_KEY=true');
      expect(stderr).not.toMatch(/^\s+at /m);
      expect(stdout).not.toMatch(/listening/);
      expect(existsSync(databasePath)).toBe(false);
    } finally {
      dir.remove();
    }
  }, 30_000);
});

describe('the entry point (src/server.ts)', () => {
  test('when PORT=abc, then it exits 1 naming PORT on stderr, without a stack trace, and opens nothing', async () => {
    const dir = tempDir();
    try {
      const databasePath = join(dir.path, 'refused.db');
      const child = spawn(join(root, 'node_modules/.bin/tsx'), ['src/server.ts'], {
        cwd: root,
        // PATH only so tsx's `#!/usr/bin/env node` resolves; no other setting leaks in.
        env: { PATH: process.env.PATH ?? '', PORT: 'abc', DATABASE_PATH: databasePath },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const [code] = (await once(child, 'exit')) as [number | null];
      clearTimeout(killer);

      expect(code).toBe(1);
      expect(stderr).toMatch(/PORT="abc": must be a whole number/);
      expect(stderr).not.toMatch(/^\s+at /m);
      // It stopped before building anything: no "listening" log line, no database file.
      expect(stdout).not.toMatch(/listening/);
      expect(existsSync(databasePath)).toBe(false);
    } finally {
      dir.remove();
    }
  }, 30_000);
});

describe('HTTP basics', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { LOG_LEVEL: 'info' } });
  });
  afterAll(async () => {
    await stack.close();
  });

  /** The access-log line of one request ('finish' may fire a moment after the client has the answer). */
  async function accessLine(requestId: string) {
    for (let tries = 0; tries < 50; tries++) {
      const line = stack.logLines.find((l) => l.message === 'request' && l.request_id === requestId);
      if (line) return line;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`no access log line with request_id ${requestId}`);
  }

  test('when GET /health, then 200 with status ok, the package.json version, which instance answered and its database engine', async () => {
    const res = await request(stack.app).get('/health').expect(200);
    expect(res.body).toEqual({ status: 'ok', version: pkg.version, instance: stack.deps.instanceId, database: testEngine() });
    expect(stack.deps.instanceId).toMatch(/^[\w.:-]+$/);
  });

  test('when a route does not exist, then 404 problem JSON with type, title, status and detail', async () => {
    const res = await request(stack.app).get('/no/such/route').expect(404);
    expect(res.headers['content-type']).toMatch(PROBLEM_JSON);
    expect(res.body).toEqual({
      type: expect.stringMatching(/\S/),
      title: expect.stringMatching(/\S/),
      status: 404,
      detail: expect.stringContaining('/no/such/route'),
    });
  });

  test('when the request carries X-Request-Id, then it is echoed back and logged with method, path, status and duration', async () => {
    const res = await request(stack.app).get('/health?probe=1').set('X-Request-Id', 'abc-123').expect(200);
    expect(res.headers['x-request-id']).toBe('abc-123');
    const line = await accessLine('abc-123');
    expect(line).toMatchObject({ method: 'GET', path: '/health?probe=1', status: 200, request_id: 'abc-123' });
    expect(typeof line.duration_ms).toBe('number');
    expect(line.duration_ms).toBeGreaterThanOrEqual(0);
  });

  test('when the request has no X-Request-Id, then a fresh id is generated, echoed and logged', async () => {
    const first = await request(stack.app).get('/no-such-page').expect(404);
    const second = await request(stack.app).get('/no-such-page').expect(404);
    const id = first.headers['x-request-id'];
    expect(id).toMatch(/^[\w.:-]{8,}$/);
    expect(second.headers['x-request-id']).not.toBe(id);
    expect(await accessLine(id!)).toMatchObject({ method: 'GET', path: '/no-such-page', status: 404 });
  });

  test('when the sent X-Request-Id is not a safe token, then it is replaced by a generated one', async () => {
    const res = await request(stack.app).get('/health').set('X-Request-Id', 'bad id <script>').expect(200);
    expect(res.headers['x-request-id']).not.toBe('bad id <script>');
    expect(res.headers['x-request-id']).toMatch(/^[\w.:-]+$/);
  });

  test('when GET /batches with a sane limit, then 200 (the control for the bad-limit cases)', async () => {
    const res = await request(stack.app).get('/batches?limit=1').expect(200);
    expect(res.body).toEqual({ batches: [], next_cursor: null });
  });

  test.each(['0', 'abc', '201', '1.5'])('when GET /batches?limit=%s, then 400 problem JSON naming limit', async (limit) => {
    const res = await request(stack.app).get(`/batches?limit=${limit}`).expect(400);
    expect(res.headers['content-type']).toMatch(PROBLEM_JSON);
    expect(res.body).toMatchObject({ status: 400, detail: expect.stringMatching(/\blimit\b/) });
  });

  test('when GET /batches/not-a-uuid, then 400 problem JSON saying the id must be a UUID', async () => {
    const res = await request(stack.app).get('/batches/not-a-uuid').expect(400);
    expect(res.headers['content-type']).toMatch(PROBLEM_JSON);
    expect(res.body).toMatchObject({ status: 400, detail: expect.stringMatching(/UUID/) });
  });

  test('when GET /batches/<a uuid nobody uploaded>, then 404 problem JSON naming the id', async () => {
    const id = randomUUID();
    const res = await request(stack.app).get(`/batches/${id}`).expect(404);
    expect(res.headers['content-type']).toMatch(PROBLEM_JSON);
    expect(res.body).toMatchObject({ status: 404, detail: expect.stringContaining(id) });
  });
});

describe.each(['production', 'development'])('an unexpected error with NODE_ENV=%s', (nodeEnv) => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { NODE_ENV: nodeEnv, ALLOW_NO_API_KEY: 'true' } });
  });
  afterAll(async () => {
    await stack.close();
  });

  test('when the database is gone under a request, then 500 problem JSON with no stack trace or file path, and the error is logged', async () => {
    await request(stack.app).get('/batches').expect(200); // the control: it works while the database is open
    await stack.deps.close();

    const res = await request(stack.app).get('/batches').set('X-Request-Id', `boom-${nodeEnv}`).expect(500);
    expect(res.headers['content-type']).toMatch(PROBLEM_JSON);
    expect(Object.keys(res.body as object).sort()).toEqual(['detail', 'status', 'title', 'type']);
    expect(res.body).toMatchObject({ status: 500 });
    expect(res.text).not.toMatch(/\bat \S+ \(|\\n\s*at |^\s*at /m);
    expect(res.text).not.toContain(root);
    expect(res.text).not.toContain('/work/');
    expect(res.text).not.toMatch(/\.[cm]?[jt]s\b/);
    expect(res.text).not.toMatch(/database connection/i);
    // What the user is not shown is in the log, tied to the request.
    const logged = stack.logLines.find((line) => line.message === 'request failed' && line.request_id === `boom-${nodeEnv}`);
    expect(logged).toMatchObject({ level: 'error', method: 'GET', path: '/batches' });
    expect(String(logged?.error)).toMatch(/database connection is not open/i);
  });
});
