import http from 'node:http';
import request from 'supertest';
import { ConfigError, loadConfig } from '../src/config.js';
import { startStack, type Stack } from './helpers.js';
import { killAllServices, startService } from './service-process.js';

const KEY = 'k3y-for-tests-0123456789';
const CSV = Buffer.from('name,address\nGeneral Hospital,1 Main St\n');

let stack: Stack;
afterEach(async () => {
  await killAllServices();
  await stack?.close();
});

const upload = (headers: Record<string, string> = {}) =>
  request(stack.app).post('/hospitals/bulk').set(headers).attach('file', CSV, 'h.csv');

describe('API key', () => {
  beforeEach(async () => {
    stack = await startStack({ env: { API_KEY: KEY } });
  });

  test('when API_KEY is set and no key is sent, then the API answers 401 problem JSON with WWW-Authenticate and sends nothing upstream', async () => {
    const res = await upload();

    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="hospital-bulk"');
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body.detail).toBe('This service needs an API key: send Authorization: Bearer <key>.');
    expect(stack.sim.requests).toEqual([]);
  });

  test('when a wrong key is sent, then 401 says the key is not valid, on every API route', async () => {
    const bearer = { Authorization: 'Bearer not-the-key' };
    const id = '6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55';

    const answers = await Promise.all([
      upload(bearer),
      request(stack.app).post('/hospitals/bulk/validate').set(bearer).attach('file', CSV, 'h.csv'),
      request(stack.app).get('/batches').set(bearer),
      request(stack.app).get(`/batches/${id}`).set(bearer),
      request(stack.app).get(`/batches/${id}/events`).set(bearer),
      request(stack.app).get(`/batches/${id}/results.csv`).set(bearer),
      request(stack.app).post(`/batches/${id}/resume`).set(bearer),
      request(stack.app).post(`/batches/${id}/rollback`).set(bearer),
    ]);

    expect(answers.map((res) => res.status)).toEqual([401, 401, 401, 401, 401, 401, 401, 401]);
    expect(answers.every((res) => res.body.detail === 'The API key is not valid.')).toBe(true);
    expect(stack.sim.requests).toEqual([]);
  });

  test('when the right key is sent, then the upload goes through', async () => {
    const res = await upload({ Authorization: `Bearer ${KEY}` });

    expect(res.status).toBe(200);
    expect(res.body.status).toBe('completed');
  });

  test('when API_KEY is set, then /health stays open', async () => {
    const res = await request(stack.app).get('/health');

    expect(res.status).toBe(200);
  });
});

test('when API_KEY is unset, then the API is open', async () => {
  stack = await startStack();

  expect((await request(stack.app).get('/batches')).status).toBe(200);
});

test('when API_KEY is shorter than 16 characters, then the configuration is refused naming it, without its value', () => {
  expect(() => loadConfig({ API_KEY: 'short' })).toThrow(ConfigError);
  expect(() => loadConfig({ API_KEY: 'short' })).toThrow(/^Invalid configuration:\n {2}API_KEY=<hidden, 5 characters>: must be at least 16 characters/);
});

test('when the service starts in production without API_KEY but with ALLOW_NO_API_KEY=true, then it starts and logs a warning', async () => {
  stack = await startStack();
  const service = await startService({
    directoryUrl: stack.sim.url,
    dbPath: `${stack.config.DATABASE_PATH}.2`,
    env: { NODE_ENV: 'production', ALLOW_NO_API_KEY: 'true' },
  });

  expect(service.logs).toContainEqual(
    expect.objectContaining({ level: 'warn', message: expect.stringMatching(/^API_KEY is not set \(ALLOW_NO_API_KEY=true\)/) }),
  );
});

describe('abuse limits', () => {
  test('when one client sends more than UPLOAD_RATE_PER_MIN uploads in a minute, then the next gets 429 with Retry-After and is not processed', async () => {
    stack = await startStack({ env: { UPLOAD_RATE_PER_MIN: '2' } });
    await upload();
    await upload();
    const before = stack.sim.requests.length;

    const res = await upload();

    expect(res.status).toBe(429);
    const seconds = Number(res.headers['retry-after']);
    expect(seconds).toBeGreaterThanOrEqual(1);
    expect(seconds).toBeLessThanOrEqual(60);
    expect(res.body.detail).toBe(`At most 2 uploads, resumes and rollbacks per minute from one client; try again in ${seconds} second${seconds === 1 ? '' : 's'}.`);
    expect(stack.sim.requests.length).toBe(before);
    expect((await request(stack.app).get('/batches')).body.batches).toHaveLength(2);
  });

  test('when MAX_ACTIVE_BATCHES batches are running, then another upload gets 503 with Retry-After and is not recorded', async () => {
    stack = await startStack({ sim: { createDelayMs: 300 }, env: { MAX_ACTIVE_BATCHES: '1' } });
    const first = await upload({ Prefer: 'respond-async' });

    const second = await upload();

    expect(first.status).toBe(202);
    expect(second.status).toBe(503);
    expect(second.headers['retry-after']).toBe('30');
    expect(second.body.detail).toMatch(/^1 batches are already running/);
    expect((await request(stack.app).get('/batches')).body.batches).toHaveLength(1);
  });
});

describe('headers and leaks', () => {
  test('answers carry helmet security headers and no X-Powered-By', async () => {
    stack = await startStack();

    const res = await request(stack.app).get('/health');

    expect(res.headers['x-powered-by']).toBeUndefined();
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['content-security-policy']).toMatch(/default-src 'self'/);
    // The page must also load over plain HTTP on a LAN address (demo --serve).
    expect(res.headers['content-security-policy']).not.toMatch(/upgrade-insecure-requests/);
    expect(res.headers['strict-transport-security']).toBeDefined();
  });

  test('when the directory answers with extra fields, then only its detail text reaches the user', async () => {
    stack = await startStack();
    stack.sim.inject('create', { kind: 'status', status: 422, body: { detail: 'Name not allowed', trace: 'File "/srv/app.py", line 3', secret: 'x' } });

    const res = await upload();

    expect(res.body.hospitals[0].error_message).toBe('Rejected by the directory (HTTP 422): Name not allowed');
    expect(JSON.stringify(res.body)).not.toMatch(/app\.py|secret/);
  });
});

describe('inbound timeouts', () => {
  async function rawRequest(url: string, write: (req: http.ClientRequest) => void): Promise<number> {
    const { port } = new URL(url);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/hospitals/bulk', headers: { 'content-type': 'multipart/form-data; boundary=x', 'content-length': '1000' } });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      write(req);
    });
  }

  test('when a client trickles its upload slower than REQUEST_TIMEOUT_MS, then the server answers 408 and moves on', async () => {
    stack = await startStack();
    const service = await startService({ directoryUrl: stack.sim.url, dbPath: `${stack.config.DATABASE_PATH}.service`, env: { REQUEST_TIMEOUT_MS: '1000' } });

    const status = await rawRequest(service.url, (req) => req.write('--x\r\n'));

    expect(status).toBe(408);
    expect(stack.sim.requests).toEqual([]);
  });

  test('when a synchronous upload takes longer than REQUEST_TIMEOUT_MS to process, then its answer still arrives', async () => {
    stack = await startStack({ sim: { createDelayMs: 1500 } });
    const service = await startService({ directoryUrl: stack.sim.url, dbPath: `${stack.config.DATABASE_PATH}.service`, env: { REQUEST_TIMEOUT_MS: '1000' } });
    const form = new FormData();
    form.append('file', new Blob([CSV]), 'h.csv');

    const res = await fetch(`${service.url}/hospitals/bulk`, { method: 'POST', body: form });

    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string }).status).toBe('completed');
  });
});
