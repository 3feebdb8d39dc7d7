/**
 * A history database as a long-running service would have it: 10,000 completed batches of
 * 20 rows each (plus the 22 events each such batch records), built in a few seconds
 * without the directory. The schema comes from the BUILT code: dist's openDatabase creates
 * the file and applies the committed migrations; the rows are then inserted with
 * better-sqlite3 directly, in large transactions. The PostgreSQL history is that file
 * copied by the built `db:copy` (src/db/copy.ts: multi-row inserts in one transaction),
 * so building it also times db:copy on a 10,000-batch history.
 */
import { createHash, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { ROOT, type BenchEngine, type DatabaseEnv } from './lib.js';

export const BATCHES = 10_000;
export const ROWS_PER_BATCH = 20;
const PER_TRANSACTION = 1_000;

export interface HistoryDb {
  engine: BenchEngine['name'];
  database: DatabaseEnv;
  /** Every batch id, oldest first. */
  ids: string[];
  buildMs: number;
  sizeMb: number;
}

export async function buildHistoryDb(dir: string): Promise<HistoryDb> {
  const started = performance.now();
  const path = join(dir, 'history-10k.db');
  const { ids, sizeMb } = await buildSqliteHistory(path);
  return { engine: 'sqlite', database: { DATABASE_PATH: path }, ids, buildMs: performance.now() - started, sizeMb };
}

/** The same history on PostgreSQL: a fresh database of `engine`, filled by the built db:copy. */
export async function copyHistory(from: HistoryDb, engine: BenchEngine, dir: string): Promise<HistoryDb> {
  const { copySqliteToPostgres } = (await import(pathToFileURL(join(ROOT, 'dist/src/db/copy.js')).href)) as typeof import('../src/db/copy.js');
  const database = await engine.freshDatabase(dir, 'history');
  const started = performance.now();
  await copySqliteToPostgres({ from: from.database.DATABASE_PATH, to: database.DATABASE_URL! });
  const buildMs = performance.now() - started;
  const client = new pg.Client({ connectionString: database.DATABASE_URL });
  await client.connect();
  try {
    // A fresh copy has no planner statistics yet; a production database would have them.
    await client.query('vacuum analyze');
    const { rows } = await client.query<{ bytes: string }>('select pg_database_size(current_database()) as bytes');
    return { engine: engine.name, database, ids: from.ids, buildMs, sizeMb: Number(rows[0]!.bytes) / 1024 ** 2 };
  } finally {
    await client.end();
  }
}

async function buildSqliteHistory(path: string): Promise<{ ids: string[]; sizeMb: number }> {
  // dist has no .d.ts files: type the module from its source.
  const { openSqlite } = (await import(pathToFileURL(join(ROOT, 'dist/src/db/sqlite/database.js')).href)) as typeof import('../src/db/sqlite/database.js');
  openSqlite(path).close();

  const sqlite = new Database(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = OFF');
  const insertBatch = sqlite.prepare(
    `insert into batches (id, filename, status, total_rows, created_rows, failed_rows, activated, error, notice, idempotency_key,
       file_sha256, created_at, started_at, completed_at, processing_ms)
     values (?, ?, 'completed', ?, ?, 0, 1, null, null, null, ?, ?, ?, ?, ?)`,
  );
  const insertRow = sqlite.prepare(
    `insert into batch_rows (batch_id, row, line, name, address, phone, status, hospital_id, error_message, attempts, updated_at)
     values (?, ?, ?, ?, ?, ?, 'created_and_activated', ?, null, 1, ?)`,
  );
  const insertEvent = sqlite.prepare(`insert into batch_events (batch_id, type, data, created_at) values (?, ?, ?, ?)`);

  const ids: string[] = [];
  // One batch every ~4 minutes over the last ~28 days, oldest first.
  const start = Date.now() - BATCHES * 240_000;
  let hospitalId = 1;
  const insertChunk = sqlite.transaction((from: number, to: number) => {
    for (let b = from; b < to; b++) {
      const id = randomUUID();
      ids.push(id);
      const createdAt = start + b * 240_000;
      const processingMs = 2_000 + ((b * 7919) % 1_000);
      insertBatch.run(
        id,
        `hospitals-${b}.csv`,
        ROWS_PER_BATCH,
        ROWS_PER_BATCH,
        createHash('sha256').update(id).digest('hex'),
        createdAt,
        createdAt + 5,
        createdAt + processingMs,
        processingMs,
      );
      insertEvent.run(id, 'status', JSON.stringify({ type: 'status', status: 'processing', error: null }), createdAt + 5);
      for (let r = 1; r <= ROWS_PER_BATCH; r++) {
        const name = `Hospital ${b}-${r}`;
        const address = `${r} Main Street, Springfield ${b}`;
        const phone = `555-${String(r).padStart(4, '0')}`;
        insertRow.run(id, r, r + 1, name, address, phone, hospitalId, createdAt + 100 * r);
        insertEvent.run(
          id,
          'row',
          JSON.stringify({ type: 'row', row: r, status: 'created', hospitalId, errorMessage: null, attempts: 1, progress: null }),
          createdAt + 100 * r,
        );
        hospitalId++;
      }
      insertEvent.run(id, 'status', JSON.stringify({ type: 'status', status: 'completed', error: null }), createdAt + processingMs);
    }
  });
  for (let from = 0; from < BATCHES; from += PER_TRANSACTION) insertChunk(from, Math.min(BATCHES, from + PER_TRANSACTION));
  sqlite.pragma('wal_checkpoint(TRUNCATE)');
  const pages = sqlite.pragma('page_count', { simple: true }) as number;
  const pageSize = sqlite.pragma('page_size', { simple: true }) as number;
  sqlite.close();
  return { ids, sizeMb: (pages * pageSize) / 1024 ** 2 };
}
