import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { migrationsFolder } from '../migrations.js';
import * as schema from './schema.js';

export type SqliteDb = ReturnType<typeof drizzle<typeof schema>>;

/** Opens (creating folder and file if needed) the SQLite history; migrates it unless told not to. */
export function openSqlite(path: string, { migrate: run = true } = {}): { db: SqliteDb; sqlite: Database.Database; close: () => void } {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path);
  // WAL lets GET /batches read while a batch is being written; the busy timeout covers
  // the brief moments two writers (e.g. a CLI and the server) meet.
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  const db = drizzle(sqlite, { schema });
  if (run) migrate(db, { migrationsFolder: migrationsFolder('sqlite') });
  return { db, sqlite, close: () => sqlite.close() };
}
