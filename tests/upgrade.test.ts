/**
 * A deploy that adds a migration to a database with history: the uploads recorded before it
 * keep every row and read as they always did. Built for real: the database is migrated with
 * the migrations of the release before (the journal cut short), holds an upload written by
 * that schema, and then the current code migrates and reads it.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3';
import { migrate as migrateSqlite } from 'drizzle-orm/better-sqlite3/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/node-postgres';
import { migrate as migratePostgres } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import request from 'supertest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { migrateDatabase } from '../src/db/migrate.js';
import { migrationsFolder } from '../src/db/migrations.js';
import { buildDeps } from '../src/deps.js';
import { FAST_ENV, memoryLogger, tempDir, testDatabase } from './helpers.js';
import { testEngine } from './pg/engine.js';

const BATCH = '0b1e6c52-8d7a-4a3e-9a61-3f0f6f1f2a10';
const CREATED_AT = Date.UTC(2026, 10, 1);

/** The migrations folder of the release before the newest migration: the same files, the journal one entry short. */
function previousRelease(dir: string): { folder: string; newest: string } {
  const engine = testEngine();
  const folder = join(dir, `migrations-${engine}`);
  cpSync(migrationsFolder(engine), folder, { recursive: true });
  const path = join(folder, 'meta', '_journal.json');
  const journal = JSON.parse(readFileSync(path, 'utf8')) as { entries: { tag: string }[] };
  const newest = journal.entries.pop()!.tag;
  writeFileSync(path, JSON.stringify(journal));
  return { folder, newest };
}

/** An upload of three rows as the release before wrote it: completed, all activated (`yes`: the engine's true). */
const oldUpload = (yes: string) => [
  `insert into batches (id, filename, status, total_rows, created_rows, failed_rows, activated, file_sha256, created_at, started_at, completed_at, processing_ms, fence)
   values ('${BATCH}', 'old.csv', 'completed', 3, 3, 0, ${yes}, 'abc', ${CREATED_AT}, ${CREATED_AT}, ${CREATED_AT + 4000}, 4000, 1)`,
  ...[1, 2, 3].map(
    (row) => `insert into batch_rows (batch_id, row, line, name, address, phone, status, hospital_id, attempts, updated_at)
     values ('${BATCH}', ${row}, ${row + 1}, 'Old Hospital ${row}', '${row} Old Road', null, 'created_and_activated', ${100 + row}, 1, ${CREATED_AT})`,
  ),
];

let dir: ReturnType<typeof tempDir>;
let drop: () => Promise<void> = async () => undefined;
beforeEach(() => {
  dir = tempDir();
});
afterEach(async () => {
  await drop();
  dir.remove();
});

test('when a database with history is migrated to this release, then every old upload keeps its rows and reads exactly as before', async () => {
  const database = await testDatabase(dir.path);
  drop = database.drop;
  const { folder, newest } = previousRelease(dir.path);
  if (database.env.DATABASE_URL) {
    const pool = new pg.Pool({ connectionString: database.env.DATABASE_URL, max: 1 });
    await migratePostgres(drizzlePostgres(pool), { migrationsFolder: folder });
    for (const statement of oldUpload('true')) await pool.query(statement);
    await pool.end();
  } else {
    const sqlite = new Database(database.env.DATABASE_PATH);
    migrateSqlite(drizzleSqlite(sqlite), { migrationsFolder: folder });
    for (const statement of oldUpload('1')) sqlite.prepare(statement).run();
    sqlite.close();
  }
  const config = loadConfig({ ...FAST_ENV, HOSPITAL_API_BASE_URL: 'http://127.0.0.1:9', ...database.env });

  const migrated = await migrateDatabase(config);

  expect(migrated.applied).toEqual([newest]);
  const deps = await buildDeps(config, memoryLogger().logger);
  try {
    const res = await request(createApp(deps)).get(`/batches/${BATCH}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ batch_id: BATCH, status: 'completed', total_hospitals: 3, processed_hospitals: 3, batch_activated: true });
    expect(res.body.hospitals).toEqual(
      [1, 2, 3].map((row) => ({
        row,
        hospital_id: 100 + row,
        name: `Old Hospital ${row}`,
        address: `${row} Old Road`,
        phone: null,
        status: 'created_and_activated',
        error_message: null,
        attempts: 1,
      })),
    );
    expect(res.body).not.toHaveProperty('directory_batches');
    // Its rows belong to the one directory batch they were created in: the upload's own id.
    expect((await deps.store.findRows(BATCH)).map((row) => row.directoryBatchId)).toEqual([BATCH, BATCH, BATCH]);
  } finally {
    await deps.close();
  }
});
