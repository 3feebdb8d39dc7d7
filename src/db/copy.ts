import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { getTableName, is } from 'drizzle-orm';
import { getTableConfig as pgTableConfig, PgTable, type PgColumn } from 'drizzle-orm/pg-core';
import { getTableConfig as sqliteTableConfig, SQLiteTable, type SQLiteColumn } from 'drizzle-orm/sqlite-core';
import pg from 'pg';
import { journal, migrateDatabase } from './migrate.js';
import * as postgresSchema from './postgres/schema.js';
import { connectionError, DatabaseError, redactUrl } from './postgres/url.js';
import * as sqliteSchema from './sqlite/schema.js';

/** Rows sent to PostgreSQL per statement: one JSON parameter each, so memory stays flat. */
const CHUNK_ROWS = 5_000;

export interface CopyReport {
  from: string;
  /** The target URL without its password. */
  to: string;
  /** Migrations the copy applied to the target before filling it. */
  migrated: string[];
  /** Rows copied per table, in the order they were copied. */
  tables: { name: string; rows: number }[];
  /** Each serial column's sequence, set to continue after the highest copied value. */
  sequences: { column: string; next: number }[];
}

/** One table as both schemas declare it, with its columns paired by their database name. */
interface TablePair {
  name: string;
  postgres: PgTable;
  columns: { name: string; sqlite: SQLiteColumn; postgres: PgColumn }[];
}

/**
 * Copies a SQLite history into an empty PostgreSQL database, every table of the schema
 * modules (so a table added to both schemas is copied without changing this file), in one
 * transaction on the target, a chunk at a time. `seq` values are kept, so Last-Event-ID
 * still resumes where it did; serial sequences then continue after the copied values.
 * The source is read in one snapshot and never written.
 */
export async function copySqliteToPostgres(options: {
  from: string;
  to: string;
  onTable?: (name: string, rows: number) => void;
}): Promise<CopyReport> {
  const tables = pairTables();
  const source = openSource(options.from, tables);
  try {
    const migrated = (await migrateDatabase({ DATABASE_URL: options.to, DATABASE_PATH: options.from })).applied;
    const client = new pg.Client({ connectionString: options.to });
    client.on('error', () => undefined);
    await client.connect().catch((error: unknown) => {
      throw connectionError(options.to, error);
    });
    try {
      await client.query('begin');
      // Nobody writes the tables while they are checked empty and filled (a second copy waits).
      await client.query(`lock table ${tables.map((t) => qualified(t.postgres)).join(', ')} in exclusive mode`);
      await assertEmpty(client, tables, options.to);
      // One read transaction: every table comes from the same moment of the history.
      source.exec('begin');
      const copied: CopyReport['tables'] = [];
      for (const table of tables) {
        const rows = await copyTable(source, client, table);
        copied.push({ name: table.name, rows });
        options.onTable?.(table.name, rows);
      }
      source.exec('commit');
      const sequences = await continueSequences(client, tables);
      await client.query('commit');
      return { from: options.from, to: redactUrl(options.to), migrated, tables: copied, sequences };
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      if (error instanceof DatabaseError) throw error;
      throw connectionError(options.to, error);
    } finally {
      await client.end().catch(() => undefined);
    }
  } finally {
    source.close();
  }
}

/** The target already holds data: db:copy only fills an empty history. */
export class TargetNotEmptyError extends DatabaseError {}

/**
 * Every history table of the PostgreSQL schema module (not the COORDINATION_TABLES) with its SQLite twin, parents before the
 * tables that reference them. Throws, naming it, for a table or column one schema has and
 * the other has not: copying part of a history silently would be worse than not copying.
 */
export function pairTables(): TablePair[] {
  const pgTables = (Object.values(postgresSchema) as unknown[])
    .filter((value): value is PgTable => is(value, PgTable))
    .filter((table) => !postgresSchema.COORDINATION_TABLES.has(getTableName(table)));
  const sqliteTables = new Map(
    (Object.values(sqliteSchema) as unknown[])
      .filter((value): value is SQLiteTable => is(value, SQLiteTable))
      .map((table) => [getTableName(table), table]),
  );
  for (const name of sqliteTables.keys()) {
    if (!pgTables.some((table) => getTableName(table) === name)) {
      throw new DatabaseError(`Table "${name}" is in the SQLite schema (src/db/sqlite/schema.ts) but not in the PostgreSQL one: db:copy cannot copy it.`);
    }
  }
  const pairs = pgTables.map((table): TablePair => {
    const name = getTableName(table);
    const twin = sqliteTables.get(name);
    if (!twin) throw new DatabaseError(`Table "${name}" is in the PostgreSQL schema (src/db/postgres/schema.ts) but not in the SQLite one: db:copy cannot fill it.`);
    const sqliteColumns = new Map(sqliteTableConfig(twin).columns.map((column) => [column.name, column]));
    const columns = pgTableConfig(table).columns.map((column) => {
      const sqlite = sqliteColumns.get(column.name);
      if (!sqlite) throw new DatabaseError(`Column "${name}.${column.name}" is in the PostgreSQL schema but not in the SQLite one: db:copy cannot fill it.`);
      sqliteColumns.delete(column.name);
      return { name: column.name, sqlite, postgres: column };
    });
    const extra = [...sqliteColumns.keys()];
    if (extra.length > 0) throw new DatabaseError(`Column "${name}.${extra[0]}" is in the SQLite schema but not in the PostgreSQL one: db:copy would lose it.`);
    return { name, postgres: table, columns };
  });
  return parentsFirst(pairs);
}

/** Orders tables so that each comes after every table its foreign keys reference. */
function parentsFirst(pairs: TablePair[]): TablePair[] {
  const ordered: TablePair[] = [];
  const visit = (pair: TablePair, path: string[]) => {
    if (ordered.includes(pair)) return;
    if (path.includes(pair.name)) throw new DatabaseError(`Foreign keys form a cycle (${[...path, pair.name].join(' → ')}): db:copy cannot order the tables.`);
    for (const key of pgTableConfig(pair.postgres).foreignKeys) {
      const parent = pairs.find((p) => p.postgres === key.reference().foreignTable);
      if (parent && parent !== pair) visit(parent, [...path, pair.name]);
    }
    ordered.push(pair);
  };
  for (const pair of pairs) visit(pair, []);
  return ordered;
}

/** Opens the SQLite history read-only, after checking it is one this version knows entirely. */
function openSource(path: string, tables: TablePair[]): Database.Database {
  if (path !== ':memory:' && !existsSync(path)) throw new DatabaseError(`There is no SQLite history at ${path}: give its path with --from, or set DATABASE_PATH.`);
  const source = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const inFile = (source.prepare(`select name from sqlite_master where type = 'table' and name not like 'sqlite\\_%' escape '\\'`).all() as { name: string }[]).map((t) => t.name);
    if (!inFile.includes('__drizzle_migrations')) throw new DatabaseError(`${path} is not a hospital-bulk history (it has no migrations table).`);
    const last = Number((source.prepare('select max(created_at) as last from __drizzle_migrations').get() as { last: number | null }).last ?? 0);
    const latest = journal('sqlite').at(-1);
    if (latest && last < latest.when) {
      throw new DatabaseError(`${path} was written by an older version (its schema is before ${latest.tag}): run \`DATABASE_PATH=${path} npm run db:migrate\` first, then copy.`);
    }
    const unknown = inFile.filter((name) => name !== '__drizzle_migrations' && !tables.some((t) => t.name === name));
    if (unknown.length > 0) throw new DatabaseError(`${path} has table(s) db:copy does not know: ${unknown.join(', ')}. Copying without them would lose data.`);
    return source;
  } catch (error) {
    source.close();
    throw error;
  }
}

function qualified(table: PgTable): string {
  const { name, schema } = pgTableConfig(table);
  const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;
  return schema ? `${quote(schema)}.${quote(name)}` : quote(name);
}

async function assertEmpty(client: pg.Client, tables: TablePair[], url: string): Promise<void> {
  const counts: string[] = [];
  for (const table of tables) {
    const { rows } = await client.query<{ n: string }>(`select count(*) as n from ${qualified(table.postgres)}`);
    if (Number(rows[0]?.n) > 0) counts.push(`${table.name}: ${rows[0]!.n}`);
  }
  if (counts.length > 0) {
    throw new TargetNotEmptyError(
      `The PostgreSQL database at ${redactUrl(url)} already holds a history (${counts.join(', ')} rows). ` +
        'db:copy only copies into an empty database, so nothing was copied: create a new database and copy into that.',
    );
  }
}

/**
 * Streams one table from SQLite and inserts it CHUNK_ROWS at a time as one JSON
 * parameter that json_populate_recordset spreads over the table's own columns: one
 * round trip and one parameter per chunk, whatever the number of columns.
 */
async function copyTable(source: Database.Database, client: pg.Client, table: TablePair): Promise<number> {
  const select = source.prepare(`select ${table.columns.map((c) => `"${c.name}"`).join(', ')} from "${table.name}"`).raw(true);
  const convert = table.columns.map((column) => converter(column.sqlite, column.postgres));
  const target = qualified(table.postgres);
  const insert = `insert into ${target} select * from json_populate_recordset(null::${target}, $1::json)`;
  let chunk: Record<string, unknown>[] = [];
  let copied = 0;
  const flush = async () => {
    if (chunk.length === 0) return;
    const result = await client.query({ name: `db_copy_${table.name}`, text: insert, values: [JSON.stringify(chunk)] });
    copied += result.rowCount ?? 0;
    chunk = [];
  };
  for (const values of select.iterate() as IterableIterator<unknown[]>) {
    const row: Record<string, unknown> = {};
    for (let i = 0; i < values.length; i++) row[table.columns[i]!.name] = convert[i]!(values[i]);
    chunk.push(row);
    if (chunk.length === CHUNK_ROWS) await flush();
  }
  await flush();
  return copied;
}

/**
 * SQLite's stored value → the JSON value PostgreSQL's column takes: drizzle's own mapping
 * (0/1 → boolean), and JSON kept as text on SQLite (the events) parsed for a json/jsonb column.
 */
function converter(sqlite: SQLiteColumn, postgres: PgColumn): (value: unknown) => unknown {
  const parse = postgres.dataType === 'json' && sqlite.dataType !== 'json';
  return (value) => {
    if (value === null || value === undefined) return null;
    const mapped = sqlite.mapFromDriverValue(value) as unknown;
    return parse && typeof mapped === 'string' ? (JSON.parse(mapped) as unknown) : mapped;
  };
}

/** Moves every serial column's sequence past the highest value copied (the next event gets max + 1). */
async function continueSequences(client: pg.Client, tables: TablePair[]): Promise<CopyReport['sequences']> {
  const sequences: CopyReport['sequences'] = [];
  for (const table of tables) {
    for (const column of table.columns) {
      const target = qualified(table.postgres);
      const { rows } = await client.query<{ sequence: string | null }>('select pg_get_serial_sequence($1, $2) as sequence', [target, column.name]);
      const sequence = rows[0]?.sequence;
      if (!sequence) continue;
      const { rows: set } = await client.query<{ next: string }>(
        `select setval($1, coalesce((select max("${column.name}") from ${target}), 0) + 1, false) as next`,
        [sequence],
      );
      sequences.push({ column: `${table.name}.${column.name}`, next: Number(set[0]?.next) });
    }
  }
  return sequences;
}
