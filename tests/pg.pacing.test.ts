/**
 * The shared directory limiter and the shared per-client store (src/db/postgres/pacing.ts,
 * clientLimits.ts) straight against a real PostgreSQL database: two "instances" are two
 * limiters, each on a pool and a LISTEN connection of its own, on one database. The
 * directory is played by a fixed-window counter that works the way the real one counts
 * (a window opens at the first arrival and lasts W). Runs in jest's postgres project only.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { createPostgresStore } from '../src/db/postgres/store.js';
import { PostgresClientLimitStore } from '../src/db/postgres/clientLimits.js';
import { PostgresRateLimiter } from '../src/db/postgres/pacing.js';
import type { LimiterWait } from '../src/directory/limiter.js';
import { memoryLogger } from './helpers.js';
import { testPostgresUrl } from './pg/engine.js';
import { createTestDatabase } from './pg/server.js';
import { waitUntil } from './service-process.js';

const WINDOW_MS = 300;
const LIMIT = 3;

let database: Awaited<ReturnType<typeof createTestDatabase>>;
const pools: pg.Pool[] = [];
const limiters: PostgresRateLimiter[] = [];

beforeAll(async () => {
  database = await createTestDatabase(testPostgresUrl());
  // The store's migrations create the pacing tables too.
  await (await createPostgresStore(database.url)).close();
});

afterEach(async () => {
  await Promise.all(limiters.splice(0).map((limiter) => limiter.close()));
  await Promise.all(pools.splice(0).map((pool) => pool.end()));
});

afterAll(async () => {
  await database?.drop();
});

function instanceDb() {
  const pool = new pg.Pool({ connectionString: database.url, max: 4 });
  pools.push(pool);
  return drizzle(pool);
}

async function instance(holdMs = 10_000, windowMs = WINDOW_MS): Promise<PostgresRateLimiter> {
  const limiter = await PostgresRateLimiter.open(instanceDb(), database.url, { windowMs, holdMs, logger: memoryLogger('error').logger });
  limiters.push(limiter);
  return limiter;
}

/** The directory's fixed window per key: opened by the first arrival, W long; counts what arrives in it. */
function fixedWindowDirectory(windowMs: number) {
  let window = { start: Number.NEGATIVE_INFINITY, count: 0 };
  let most = 0;
  return {
    arrive() {
      const now = Date.now();
      if (now >= window.start + windowMs) window = { start: now, count: 0 };
      window.count++;
      most = Math.max(most, window.count);
    },
    get mostInOneWindow() {
      return most;
    },
  };
}

describe('the shared directory limiter on PostgreSQL', () => {
  test('when two instances send 4 × LIMIT requests of one key at once, then no window of the directory sees more than LIMIT', async () => {
    const [a, b] = [await instance(), await instance()];
    const directory = fixedWindowDirectory(WINDOW_MS);
    const send = async (limiter: PostgresRateLimiter, i: number) => {
      const release = await limiter.acquire('create', LIMIT);
      directory.arrive();
      await sleep(5 + (i % 4) * 10); // the request in flight
      await release();
    };

    await Promise.all(Array.from({ length: 4 * LIMIT }, (_, i) => send(i % 2 === 0 ? a : b, i)));

    expect(directory.mostInOneWindow).toBe(LIMIT);
  });

  test('when every slot is taken by one instance, then the other is told how long it waits once a slot is released, and gets it', async () => {
    const [a, b] = [await instance(), await instance()];
    const releases = await Promise.all(Array.from({ length: LIMIT }, () => a.acquire('create', LIMIT)));
    const waits: LimiterWait[] = [];
    let gotIt = false;
    const waiting = b.acquire('create', LIMIT, (wait) => waits.push(wait)).then((release) => {
      gotIt = true;
      return release;
    });

    await sleep(50);
    expect(gotIt).toBe(false);
    expect(waits).toEqual([]); // every slot in flight: the wait has no length yet
    await releases[0]!();
    const release = await waiting;

    expect(waits).toHaveLength(1);
    expect(waits[0]).toMatchObject({ blocked: false });
    expect(waits[0]!.delayMs).toBeGreaterThan(0);
    expect(waits[0]!.delayMs).toBeLessThanOrEqual(WINDOW_MS);
    await Promise.all([release(), ...releases.slice(1).map((r) => r())]);
  });

  test('when an instance dies holding every slot, then its slots free at their bound (request timeout + window), not before', async () => {
    const holdMs = 600;
    const dying = await instance(holdMs);
    const beforeTaking = Date.now(); // the database's clock is this machine's
    await Promise.all(Array.from({ length: LIMIT }, () => dying.acquire('create', LIMIT)));
    // Never released: the instance is gone (its pool and LISTEN connection closed).
    await Promise.all(limiters.splice(0).map((limiter) => limiter.close()));
    await Promise.all(pools.splice(0).map((pool) => pool.end()));
    const survivor = await instance();

    const release = await survivor.acquire('create', LIMIT);

    expect(Date.now() - beforeTaking).toBeGreaterThanOrEqual(holdMs); // safety: not before the bound
    await release();
  });

  test('when an instance releases its slots and stops at once, then the releases are stored: the other instance gets a slot after one window, not at the holds\' bound', async () => {
    const stopping = await instance(60_000);
    const releases = await Promise.all(Array.from({ length: LIMIT }, () => stopping.acquire('stop', LIMIT)));
    const releasedAt = Date.now();
    for (const release of releases) release(); // queued, stored together in the background
    await Promise.all(limiters.splice(0).map((limiter) => limiter.close()));
    await Promise.all(pools.splice(0).map((pool) => pool.end()));
    const other = await instance();

    const release = await other.acquire('stop', LIMIT);

    expect(Date.now() - releasedAt).toBeLessThan(10_000); // well before the 60 s bound
    expect(Date.now() - releasedAt).toBeGreaterThanOrEqual(WINDOW_MS - 50); // and a released slot still counts for its window
    release();
  });

  test('when one instance meets a 429 and blocks the key, then the other instance waits for the block too, and is told it is blocked', async () => {
    const [a, b] = [await instance(), await instance()];
    // Long enough to outlast any delay of a loaded machine before b looks; lifted below once b has said it waits.
    await a.block('create', Date.now() + 60_000);
    const waits: LimiterWait[] = [];
    let gotIt = false;

    const acquired = b.acquire('create', LIMIT, (wait) => waits.push(wait)).then((release) => {
      gotIt = true;
      return release;
    });
    await waitUntil('b is told it waits', () => waits.length > 0);
    expect(gotIt).toBe(false);
    // The block ends (as it would when its time is up): b looks again (at the latest after POLL_MS) and gets its slot.
    await pools[0]!.query("delete from directory_blocks where key = 'create'");
    const release = await acquired;

    expect(waits).toHaveLength(1);
    expect(waits[0]).toMatchObject({ blocked: true });
    await release();
  });

  test('when another instance holds slots, then the estimate of this one counts them once it has read the key', async () => {
    // Released slots count for one window: a long one, so they still count however long a loaded machine takes to read them.
    const windowMs = 60_000;
    const [a, b] = [await instance(10_000, windowMs), await instance(10_000, windowMs)];
    const releases = await Promise.all(Array.from({ length: LIMIT }, () => a.acquire('estimate', LIMIT)));
    await Promise.all(releases.map((release) => release()));

    b.estimatedWaitMs('estimate', LIMIT, 1); // first call: reads the key in the background
    const estimate = await waitUntil('the estimate of b counts the slots of a', () => b.estimatedWaitMs('estimate', LIMIT, 1));

    expect(estimate).toBeGreaterThan(0);
    expect(estimate).toBeLessThanOrEqual(windowMs);
  });
});

describe('the shared per-client store on PostgreSQL', () => {
  test('when two instances count hits of one client, then the count is shared, and a new window starts after resetTime', async () => {
    // The calls below must land in one window: 1 s, with their connections opened beforehand, leaves a loaded machine room.
    const options = { windowMs: 1_000 } as Parameters<PostgresClientLimitStore['init']>[0];
    const [a, b] = [new PostgresClientLimitStore(instanceDb(), 'test:'), new PostgresClientLimitStore(instanceDb(), 'test:')];
    await Promise.all(pools.map((pool) => pool.query('select 1')));
    a.init(options);
    b.init(options);

    const first = await a.increment('10.0.0.1');
    const second = await b.increment('10.0.0.1');
    const other = await b.increment('10.0.0.2');
    await a.decrement('10.0.0.1');
    const afterDecrement = await b.get('10.0.0.1');

    expect([first.totalHits, second.totalHits, other.totalHits, afterDecrement?.totalHits]).toEqual([1, 2, 1, 1]);
    await sleep(Math.max(0, second.resetTime!.getTime() - Date.now()) + 20);
    expect((await a.increment('10.0.0.1')).totalHits).toBe(1);
    await b.resetKey('10.0.0.1');
    expect(await a.get('10.0.0.1')).toBeUndefined();
  });
});
