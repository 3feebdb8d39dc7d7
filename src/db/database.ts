import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { findUp } from '../paths.js';
import * as schema from './schema.js';

export type Db = ReturnType<typeof drizzle<typeof schema>>;

/** Opens (creating folder and file if needed) and migrates the SQLite history database. */
export function openDatabase(path: string): { db: Db; close: () => void } {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path);
  // WAL lets GET /batches read while a batch is being written; the busy timeout covers
  // the brief moments two writers (e.g. a CLI and the server) meet.
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  const db = drizzle(sqlite, { schema });
  migrate(db, { migrationsFolder: migrationsFolder() });
  return { db, close: () => sqlite.close() };
}

function migrationsFolder(): string {
  const journal = findUp('migrations/meta/_journal.json');
  if (journal === null) throw new Error('The migrations/ folder was not found above the running code.');
  return dirname(dirname(journal));
}
