/**
 * `npm run db:migrate` and `npm run db:copy`: the built script (dist/src/db/cli.js) as a
 * child process. A SQLite history is made through the real app against the simulator,
 * copied into a fresh PostgreSQL database, and the app started on PostgreSQL must answer
 * exactly as it did on SQLite. Runs in jest's postgres project (the server it needs);
 * `npm test` builds first; when running jest directly, run `npm run build` before.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import request from 'supertest';
import { closedPortUrl, finished, parseSse, startStack, tempDir, type Finished, type Stack } from './helpers.js';
import { testPostgresUrl } from './pg/engine.js';
import { createTestDatabase } from './pg/server.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const DB_CLI = join(root, 'dist/src/db/cli.js');

/** The script with a clean environment plus `env`: nothing of the caller's shell leaks in. */
async function dbCli(args: string[], env: Record<string, string> = {}): Promise<Finished> {
  const child = spawn(process.execPath, [DB_CLI, ...args], { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return finished(child);
}

const csv = (rows: number, prefix: string) =>
  ['name,address,phone', ...Array.from({ length: rows }, (_, i) => `${prefix} ${i + 1},${i + 1} Main St,555-01${String(i).padStart(2, '0')}`)].join('\n');

const upload = (stack: Stack, content: string, key?: string) => {
  const req = request(stack.app).post('/hospitals/bulk');
  if (key !== undefined) void req.set('Idempotency-Key', key);
  return req.attach('file', Buffer.from(content), 'hospitals.csv');
};

const passwordOf = (url: string) => decodeURIComponent(new URL(url).password);

/** Everything a client can read of a history, to compare the two engines' answers. */
async function answers(stack: Stack, ids: string[], replayFile: string) {
  const list = await request(stack.app).get('/batches?limit=100');
  const reports = await Promise.all(ids.map(async (id) => (await request(stack.app).get(`/batches/${id}`)).body as unknown));
  const streams = await Promise.all(ids.map(async (id) => parseSse((await request(stack.app).get(`/batches/${id}/events`)).text)));
  // Resume the first batch's stream after its second event, as a reconnecting client would.
  const resumeAfter = streams[0]![1]!.id!;
  const resumed = parseSse((await request(stack.app).get(`/batches/${ids[0]}/events`).set('Last-Event-ID', resumeAfter)).text);
  const replay = await upload(stack, replayFile, 'copy-key-1');
  return { list: { status: list.status, body: list.body as unknown }, reports, streams, resumed, replay: { status: replay.status, body: replay.body as unknown } };
}

describe('db:copy', () => {
  let sqliteStack: Stack;
  let target: Awaited<ReturnType<typeof createTestDatabase>>;
  let ids: string[];
  let before: Awaited<ReturnType<typeof answers>>;
  const keyedFile = csv(3, 'Keyed');

  beforeAll(async () => {
    // A SQLite history made by the real app: an empty DATABASE_URL means SQLite even here.
    sqliteStack = await startStack({ env: { DATABASE_URL: '' } });
    expect(sqliteStack.deps.store.engine).toBe('sqlite');
    const first = await upload(sqliteStack, keyedFile, 'copy-key-1');
    sqliteStack.sim.inject('create', { kind: 'pass' });
    sqliteStack.sim.inject('create', { kind: 'status', status: 400, body: { detail: 'Hospital refused for a test' } });
    const failed = await upload(sqliteStack, csv(2, 'Refused'));
    const last = await upload(sqliteStack, csv(2, 'Later'));
    expect([first.body.status, failed.body.status, last.body.status]).toEqual(['completed', 'failed', 'completed']);
    ids = [first.body.batch_id as string, failed.body.batch_id as string, last.body.batch_id as string];
    before = await answers(sqliteStack, ids, keyedFile);
    target = await createTestDatabase(testPostgresUrl());
  });

  afterAll(async () => {
    await sqliteStack?.close();
    await target?.drop();
  });

  test('when the SQLite history is copied into an empty database, then it reports the rows per table and the app on PostgreSQL answers exactly as on SQLite', async () => {
    const sqlitePath = sqliteStack.config.DATABASE_PATH;
    const source = new Database(sqlitePath, { readonly: true });
    const count = (table: string) => (source.prepare(`select count(*) as n from ${table}`).get() as { n: number }).n;
    const expected = { batches: count('batches'), batch_rows: count('batch_rows'), batch_events: count('batch_events') };
    const maxSeq = (source.prepare('select max(seq) as n from batch_events').get() as { n: number }).n;
    source.close();

    const run = await dbCli(['copy', '--from', sqlitePath, '--to', target.url]);

    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(new RegExp(`batches\\s+${expected.batches} rows`));
    expect(run.stdout).toMatch(new RegExp(`batch_rows\\s+${expected.batch_rows} rows`));
    expect(run.stdout).toMatch(new RegExp(`batch_events\\s+${expected.batch_events} rows`));
    expect(run.stdout).toContain(`batch_events.seq continues at ${maxSeq + 1}.`);
    expect(run.stdout).not.toContain(passwordOf(target.url));

    const pgStack = await startStack({ env: { DATABASE_URL: target.url } });
    try {
      expect(pgStack.deps.store.engine).toBe('postgres');
      const after = await answers(pgStack, ids, keyedFile);
      expect(after).toEqual(before);
      expect(after.replay.status).toBe(200);
      expect(after.resumed.length).toBeGreaterThan(0);

      // The sequence continues after the copied events: a new batch's events come later.
      const fresh = await upload(pgStack, csv(1, 'After the copy'));
      const events = parseSse((await request(pgStack.app).get(`/batches/${fresh.body.batch_id}/events`)).text);
      expect(Number(events[0]!.id)).toBeGreaterThan(maxSeq);
    } finally {
      await pgStack.close();
    }
  });

  test('when the target already holds a history, then the copy is refused with exit code 1 and nothing changes', async () => {
    const countBatches = async () => {
      const client = new pg.Client({ connectionString: target.url });
      await client.connect();
      try {
        return Number((await client.query<{ n: string }>('select count(*) as n from batches')).rows[0]!.n);
      } finally {
        await client.end();
      }
    };
    const held = await countBatches();
    expect(held).toBeGreaterThan(0);

    const run = await dbCli(['copy', '--from', sqliteStack.config.DATABASE_PATH, '--to', target.url]);

    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/already holds a history \(batches: \d+.*\).*only copies into an empty database/);
    expect(run.stdout + run.stderr).not.toContain(passwordOf(target.url));
    expect(await countBatches()).toBe(held);
  });

  test('when the URL is wrong, then the copy says why in plain words and never prints the password', async () => {
    const closed = new URL(await closedPortUrl());
    const unreachable = `postgres://someone:Secret-Password-1@127.0.0.1:${closed.port}/history`;
    const badPassword = new URL(target.url);
    badPassword.password = 'Wrong-Password-2';

    const refused = await dbCli(['copy', '--from', sqliteStack.config.DATABASE_PATH, '--to', unreachable]);
    const denied = await dbCli(['copy', '--from', sqliteStack.config.DATABASE_PATH, '--to', badPassword.toString()]);
    const notAUrl = await dbCli(['copy', '--from', sqliteStack.config.DATABASE_PATH, '--to', 'mysql://someone:Secret-Password-3@127.0.0.1/x']);

    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`PostgreSQL at postgres://someone:***@127.0.0.1:${closed.port}/history: nothing answers at that host and port`);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('the password (or user name) was refused');
    expect(notAUrl.code).toBe(2);
    expect(notAUrl.stderr).toContain('--to must be a postgres:// or postgresql:// URL');
    for (const [run, password] of [[refused, 'Secret-Password-1'], [denied, 'Wrong-Password-2'], [notAUrl, 'Secret-Password-3']] as const) {
      expect(run.stdout + run.stderr).not.toContain(password);
    }
  });

  test('when the source is not there, then the copy names the path and exits 1', async () => {
    const dir = tempDir();
    try {
      const run = await dbCli(['copy', '--from', join(dir.path, 'missing.db'), '--to', target.url]);

      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`There is no SQLite history at ${join(dir.path, 'missing.db')}`);
    } finally {
      dir.remove();
    }
  });
});

describe('db:migrate', () => {
  test('when run on a fresh PostgreSQL database, then it applies every migration once and says so; a second run has nothing to do', async () => {
    const database = await createTestDatabase(testPostgresUrl());
    try {
      const first = await dbCli(['migrate'], { DATABASE_URL: database.url });
      const second = await dbCli(['migrate'], { DATABASE_URL: database.url });

      expect(first).toMatchObject({ code: 0, stderr: '' });
      expect(first.stdout).toMatch(/Applied \d+ migration\(s\): 0000_init/);
      const shown = new URL(database.url);
      shown.password = '***';
      expect(first.stdout).toContain(`Migrating PostgreSQL at ${shown.toString()} ...`);
      expect(first.stdout + second.stdout).not.toContain(passwordOf(database.url));
      expect(second.stdout).toMatch(/Nothing to apply: the database is up to date \(\d{4}_\w+\)\./);
    } finally {
      await database.drop();
    }
  });

  test('when DATABASE_URL is not a PostgreSQL URL, then it exits 2 naming the variable, with the password masked', async () => {
    const run = await dbCli(['migrate'], { DATABASE_URL: 'mysql://someone:Secret-Password-4@127.0.0.1/history' });

    expect(run.code).toBe(2);
    expect(run.stderr).toContain('DATABASE_URL="mysql://someone:***@127.0.0.1/history": must be a postgres:// or postgresql:// URL');
    expect(run.stdout + run.stderr).not.toContain('Secret-Password-4');
  });

  test('when run on a new SQLite path, then it creates the file with the whole schema', async () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, 'new', 'history.db');
      const run = await dbCli(['migrate'], { DATABASE_PATH: path });

      expect(run).toMatchObject({ code: 0, stderr: '' });
      expect(run.stdout).toContain(`Migrating SQLite at ${path}`);
      const file = new Database(path, { readonly: true });
      const tables = file.prepare(`select name from sqlite_master where type = 'table' order by name`).all();
      file.close();
      expect(tables).toEqual(expect.arrayContaining([{ name: 'batches' }, { name: 'batch_rows' }, { name: 'batch_events' }]));
    } finally {
      dir.remove();
    }
  });
});
