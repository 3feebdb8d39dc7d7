import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { findUp } from '../paths.js';

/** The drizzle-kit migration folder of an engine (migrations/sqlite or migrations/postgres). */
export function migrationsFolder(engine: 'sqlite' | 'postgres'): string {
  const journal = findUp(join('migrations', engine, 'meta', '_journal.json'));
  if (journal === null) throw new Error(`The migrations/${engine} folder was not found above the running code.`);
  return dirname(dirname(journal));
}

/** How many migrations this code ships for an engine: a database with fewer applied is not ready. */
export function shippedMigrations(engine: 'sqlite' | 'postgres'): number {
  const journal = JSON.parse(readFileSync(join(migrationsFolder(engine), 'meta', '_journal.json'), 'utf8')) as { entries: unknown[] };
  return journal.entries.length;
}

/** Readiness of the database as the store sees it. */
export type Readiness = { ready: true } | { ready: false; reason: string };

/** Ready when `applied` (or a read error) says every shipped migration is in. */
export async function readinessFrom(engine: 'sqlite' | 'postgres', applied: () => Promise<number>): Promise<Readiness> {
  let count: number;
  try {
    count = await applied();
  } catch (error) {
    // A missing migrations table is "not migrated"; anything else is "not answering".
    const message = error instanceof Error ? error.message : String(error);
    if (/__drizzle_migrations/.test(message) && /(no such table|does not exist)/.test(message)) {
      return { ready: false, reason: 'The database has no migrations applied yet.' };
    }
    return { ready: false, reason: `The database does not answer: ${message}` };
  }
  const shipped = shippedMigrations(engine);
  if (count < shipped) return { ready: false, reason: `${count} of ${shipped} database migrations are applied.` };
  return { ready: true };
}
