/**
 * One pacing and one per-client limit for every instance (issue 14, items 5 and 7): two
 * BUILT service processes (`npm run build` first) on ONE PostgreSQL database, in front of
 * one simulator with the directory's real per-IP-and-path limits (30 creates per window),
 * the window shortened to W on both sides. Runs in jest's postgres project only.
 */
import type { BatchReport } from '../src/http/presenter.js';
import type { RecordedRequest, Simulator } from '../simulator/simulator.js';
import { requestsTo, startSimulator, tempDir } from './helpers.js';
import { testPostgresUrl } from './pg/engine.js';
import { createTestDatabase } from './pg/server.js';
import { killAllServices, startService, waitUntil, type ServiceProcess } from './service-process.js';

const WINDOW_MS = 2_000;
const DIRECTORY_CREATE_LIMIT = 30;

const csv = (rows: number, prefix: string) =>
  ['name,address,phone', ...Array.from({ length: rows }, (_, i) => `${prefix} ${i + 1},${i + 1} Main St,555-01${String(i).padStart(2, '0')}`)].join('\n');

function form(content: string): FormData {
  const body = new FormData();
  body.append('file', new Blob([content], { type: 'text/csv' }), 'hospitals.csv');
  return body;
}

async function upload(service: ServiceProcess, content: string, path = '/hospitals/bulk') {
  const res = await fetch(`${service.url}${path}`, { method: 'POST', body: form(content) });
  return { status: res.status, body: (await res.json()) as BatchReport };
}

/** The most creates the directory received in any W that starts at one of its arrivals (its windows start at an arrival). */
function mostCreatesInOneWindow(creates: RecordedRequest[]): number {
  const at = creates.map((r) => r.receivedAt).sort((a, b) => a - b);
  return Math.max(0, ...at.map((start) => at.filter((t) => t >= start && t < start + WINDOW_MS).length));
}

const batchOfCreate = (r: RecordedRequest) => (r.body as { creation_batch_id?: string } | null)?.creation_batch_id;

let sim: Simulator;
let database: Awaited<ReturnType<typeof createTestDatabase>>;
const dir = tempDir();

/**
 * Two instances of the service on the one database, each with `env` on top. One after the
 * other: two first starts on an empty database would both run its migrations at once.
 */
async function twoInstances(env: Record<string, string> = {}): Promise<[ServiceProcess, ServiceProcess]> {
  const shared = { DATABASE_URL: database.url, UPSTREAM_RATE_WINDOW_MS: String(WINDOW_MS), ...env };
  const a = await startService({ directoryUrl: sim.url, dbPath: `${dir.path}/a.db`, env: { ...shared, INSTANCE_ID: 'a' } });
  const b = await startService({ directoryUrl: sim.url, dbPath: `${dir.path}/b.db`, env: { ...shared, INSTANCE_ID: 'b' } });
  return [a, b];
}

beforeEach(async () => {
  sim = await startSimulator({ createDelayMs: 50, rateLimits: { windowMs: WINDOW_MS } });
  database = await createTestDatabase(testPostgresUrl());
});

afterEach(async () => {
  await killAllServices();
  await sim.close();
  await database.drop();
});

afterAll(() => dir.remove());

describe('one pacing for all instances', () => {
  test('when two instances each run a 20-row batch at the same moment, then both complete with no 429 and never more than 30 creates in a window', async () => {
    const [a, b] = await twoInstances({ UPSTREAM_CONCURRENCY: '20' });

    const [fromA, fromB] = await Promise.all([upload(a, csv(20, 'Alpha')), upload(b, csv(20, 'Beta'))]);

    for (const result of [fromA, fromB]) {
      expect(result.status).toBe(200);
      expect(result.body).toMatchObject({ status: 'completed', batch_activated: true, processed_hospitals: 20, failed_hospitals: 0 });
    }
    expect(sim.requests.filter((r) => r.status === 429)).toEqual([]);
    const creates = requestsTo(sim, 'create');
    expect(creates).toHaveLength(40);
    expect(mostCreatesInOneWindow(creates)).toBe(DIRECTORY_CREATE_LIMIT);
  });

  test('when an instance is killed in the middle of a create, then its slot frees at its bound (timeout + window) and the other instance goes on', async () => {
    // One create per window, each create slow: A's create holds the only slot when A dies.
    const timeoutMs = 3_000;
    const [a, b] = await twoInstances({ UPSTREAM_CREATE_RATE_PER_MIN: '1', UPSTREAM_TIMEOUT_MS: String(timeoutMs) });
    sim.setCreateDelay(2_000);
    const dying = upload(a, csv(1, 'Killed')).catch(() => null);
    const sentByA = await waitUntil('A has sent its create', () => requestsTo(sim, 'create')[0]);
    await a.kill('SIGKILL');
    await dying;
    sim.setCreateDelay(10);

    const fromB = await upload(b, csv(1, 'Survivor'));

    expect(fromB.body).toMatchObject({ status: 'completed', batch_activated: true, processed_hospitals: 1 });
    const sentByB = requestsTo(sim, 'create').find((r) => batchOfCreate(r) === fromB.body.batch_id)!;
    // Not before A's hold ran out (sent ~when A took it), so the directory's window of A's create had closed.
    expect(sentByB.receivedAt - sentByA.receivedAt).toBeGreaterThanOrEqual(timeoutMs + WINDOW_MS - 250);
    expect(sim.requests.filter((r) => r.status === 429)).toEqual([]);
    // It waits out A's hold (6 s) by design, after starting two services one after the other:
    // 9-13 s here, and more than jest's default 20 s once on CI, beside two busy test files.
  }, 60_000);
});

describe('per-client limits across instances', () => {
  test('when one client sends VALIDATE_RATE_PER_MIN dry runs split between two instances, then the next one gets 429 on either', async () => {
    const [a, b] = await twoInstances({ VALIDATE_RATE_PER_MIN: '4' });

    const allowed = [];
    for (const service of [a, b, a, b]) allowed.push((await upload(service, csv(1, 'Limited'), '/hospitals/bulk/validate')).status);
    const overA = await upload(a, csv(1, 'Limited'), '/hospitals/bulk/validate');
    const overB = await upload(b, csv(1, 'Limited'), '/hospitals/bulk/validate');

    expect(allowed).toEqual([200, 200, 200, 200]);
    expect([overA.status, overB.status]).toEqual([429, 429]);
  });
});
