import request from 'supertest';
import { createApp } from '../src/app.js';
import { openSqlite } from '../src/db/sqlite/database.js';
import { createSqliteStore } from '../src/db/sqlite/store.js';
import { createPostgresStore, migratePostgres } from '../src/db/postgres/store.js';
import type { Store } from '../src/db/store.js';
import { startStack, tempDir, testDatabase, type Stack } from './helpers.js';
import { testEngine } from './pg/engine.js';
import { parsePrometheus, valueOf } from './prometheus.js';

const KEY = 'ops-test-key-long-enough-1234';
const csv = (rows: number) =>
  ['name,address,phone', ...Array.from({ length: rows }, (_, i) => `Hospital ${i + 1},${i + 1} Main St,555-01${String(i).padStart(2, '0')}`)].join('\n');

let stack: Stack;
afterEach(async () => stack?.close());

const auth = { Authorization: `Bearer ${KEY}` };
async function scrape() {
  const res = await request(stack.app).get('/metrics').set(auth);
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(res.text);
}

describe('GET /metrics', () => {
  beforeEach(async () => {
    stack = await startStack({ env: { API_KEY: KEY } });
  });

  test('when scraped without the key, then 401, and the refusal is counted', async () => {
    const refused = await request(stack.app).get('/metrics');
    expect(refused.status).toBe(401);

    const samples = await scrape();
    expect(valueOf(samples, 'hospital_bulk_requests_refused_total', { reason: 'unauthorized' })).toBe(1);
  });

  test('when a batch runs between two scrapes, then the counters moved by what it did', async () => {
    const before = await scrape();
    expect(valueOf(before, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(valueOf(before, 'hospital_bulk_batches_total', { status: 'completed' })).toBe(0);

    const upload = await request(stack.app).post('/hospitals/bulk').set(auth).attach('file', Buffer.from(csv(3)), 'h.csv');
    expect(upload.body.status).toBe('completed');
    const after = await scrape();

    const delta = (name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOf(before, name, labels);
    expect(delta('hospital_bulk_batches_total', { status: 'completed' })).toBe(1);
    expect(valueOf(after, 'hospital_bulk_batches_running')).toBe(0);
    expect(delta('hospital_bulk_rows_total', { outcome: 'created' })).toBe(3);
    expect(delta('hospital_bulk_rows_total', { outcome: 'failed' })).toBe(0);
    expect(delta('hospital_bulk_directory_requests_total', { operation: 'create', outcome: 'ok', status: '200' })).toBe(3);
    expect(delta('hospital_bulk_directory_requests_total', { operation: 'activate', outcome: 'ok', status: '200' })).toBe(1);
    expect(delta('hospital_bulk_directory_request_duration_seconds_count', { operation: 'create' })).toBe(3);
    expect(valueOf(after, 'hospital_bulk_directory_request_duration_seconds_bucket', { operation: 'create', le: '+Inf' })).toBe(
      valueOf(after, 'hospital_bulk_directory_request_duration_seconds_count', { operation: 'create' }),
    );
    expect(delta('hospital_bulk_directory_rate_limit_wait_seconds_count')).toBeGreaterThanOrEqual(5);
  });

  test('when the directory rejects a row, then it is counted as rejected with the status it answered', async () => {
    stack.sim.inject('create', { kind: 'status', status: 422, body: { detail: [{ loc: ['body', 'name'], msg: 'bad' }] } }, 1);
    await request(stack.app).post('/hospitals/bulk').set(auth).attach('file', Buffer.from(csv(2)), 'h.csv');

    const samples = await scrape();
    expect(valueOf(samples, 'hospital_bulk_rows_total', { outcome: 'rejected' })).toBe(1);
    expect(valueOf(samples, 'hospital_bulk_directory_requests_total', { operation: 'create', outcome: 'rejected', status: '422' })).toBe(1);
    expect(valueOf(samples, 'hospital_bulk_batches_total', { status: 'failed' })).toBe(1);
  });
});

describe('GET /health/ready', () => {
  test('when the instance is shutting down, then 503 says so; before, 200 with the directory as last heard', async () => {
    stack = await startStack({ env: { API_KEY: KEY } });
    const fresh = await request(stack.app).get('/health/ready');
    expect(fresh.status).toBe(200);
    expect(fresh.body).toMatchObject({ status: 'ready', shutting_down: false, directory: { state: 'unknown', last_status: null } });

    await request(stack.app).post('/hospitals/bulk').set(auth).attach('file', Buffer.from(csv(1)), 'h.csv');
    const afterUpload = await request(stack.app).get('/health/ready');
    expect(afterUpload.body.directory).toMatchObject({ state: 'reachable', last_status: 200 });
    const seen = stack.sim.requests.length;

    await stack.deps.lifecycle.stop();
    const stopping = await request(stack.app).get('/health/ready');
    expect(stopping.status).toBe(503);
    expect(stopping.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(stopping.body).toMatchObject({ status: 503, detail: 'The instance is shutting down.', shutting_down: true, database: { ready: true } });
    // Readiness never calls the directory.
    expect(stack.sim.requests.length).toBe(seen);
  });

  test('when the database has no migrations applied, then 503 until they are', async () => {
    stack = await startStack();
    const dir = tempDir();
    const database = await testDatabase(dir.path);
    let bare: Store | undefined;
    try {
      const url = database.env.DATABASE_URL;
      bare = testEngine() === 'postgres' ? await createPostgresStore(url!, { migrate: false }) : createSqliteStore(database.env.DATABASE_PATH!, { migrate: false });
      const app = createApp({ ...stack.deps, store: bare });

      const before = await request(app).get('/health/ready');
      expect(before.status).toBe(503);
      expect(before.body.database).toEqual({ engine: testEngine(), ready: false, detail: 'The database has no migrations applied yet.' });

      if (url) await migratePostgres(url);
      else openSqlite(database.env.DATABASE_PATH!).close();
      const after = await request(app).get('/health/ready');
      expect(after.status).toBe(200);
      expect(after.body.database).toEqual({ engine: testEngine(), ready: true, detail: null });
    } finally {
      await bare?.close();
      await database.drop();
      dir.remove();
    }
  });
});
