import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { migrate as migrateSqlite } from 'drizzle-orm/better-sqlite3/migrator';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate as migratePostgres } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import type { Config } from '../config.js';
import { migrationsFolder } from './migrations.js';
import { connectionError, redactUrl } from './postgres/url.js';
import { openSqlite } from './sqlite/database.js';

export interface MigrationReport {
  engine: 'sqlite' | 'postgres';
  /** The file, or the URL without its password. */
  database: string;
  /** Tags of the migrations this run applied, oldest first (e.g. 0004_typed_events). */
  applied: string[];
  /** The newest migration the database now has. */
  current: string;
}

interface JournalEntry {
  tag: string;
  when: number;
}

/** The engine's migrations, oldest first, as drizzle-kit's journal lists them. */
export function journal(engine: 'sqlite' | 'postgres'): JournalEntry[] {
  const path = join(migrationsFolder(engine), 'meta', '_journal.json');
  return (JSON.parse(readFileSync(path, 'utf8')) as { entries: JournalEntry[] }).entries;
}

/**
 * Runs the configured engine's pending migrations (what start-up does), and says which.
 * drizzle applies every journal entry newer than the last one it recorded, so comparing
 * that record before and after names the migrations applied.
 */
export async function migrateDatabase(config: Pick<Config, 'DATABASE_URL' | 'DATABASE_PATH'>): Promise<MigrationReport> {
  const engine = config.DATABASE_URL ? 'postgres' : 'sqlite';
  const entries = journal(engine);
  const { before, after } = config.DATABASE_URL ? await onPostgres(config.DATABASE_URL) : onSqlite(config.DATABASE_PATH);
  const applied = entries.filter((e) => e.when > before && e.when <= after).map((e) => e.tag);
  const current = entries.filter((e) => e.when <= after).at(-1)?.tag ?? '(none)';
  return { engine, database: config.DATABASE_URL ? redactUrl(config.DATABASE_URL) : config.DATABASE_PATH, applied, current };
}

function onSqlite(path: string): { before: number; after: number } {
  const { db, sqlite, close } = openSqlite(path, { migrate: false });
  try {
    const last = () => {
      const exists = sqlite.prepare(`select 1 from sqlite_master where type = 'table' and name = '__drizzle_migrations'`).get();
      if (!exists) return 0;
      return Number((sqlite.prepare('select max(created_at) as last from __drizzle_migrations').get() as { last: number | null }).last ?? 0);
    };
    const before = last();
    migrateSqlite(db, { migrationsFolder: migrationsFolder('sqlite') });
    return { before, after: last() };
  } finally {
    close();
  }
}

async function onPostgres(url: string): Promise<{ before: number; after: number }> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  pool.on('error', () => undefined);
  const db = drizzle(pool);
  try {
    // drizzle's pg migrator keeps its record in drizzle.__drizzle_migrations.
    const last = async () => {
      // Two statements: a query naming a table that does not exist fails at parse time.
      const { rows: found } = await db.execute<{ name: string | null }>(sql`select to_regclass('drizzle.__drizzle_migrations')::text as name`);
      if (!found[0]?.name) return 0;
      const { rows } = await db.execute<{ last: string | null }>(sql`select max(created_at) as last from drizzle.__drizzle_migrations`);
      return Number(rows[0]?.last ?? 0);
    };
    const before = await last();
    await migratePostgres(db, { migrationsFolder: migrationsFolder('postgres') });
    return { before, after: await last() };
  } catch (error) {
    throw connectionError(url, error);
  } finally {
    await pool.end();
  }
}
