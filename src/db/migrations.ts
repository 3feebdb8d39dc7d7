import { dirname, join } from 'node:path';
import { findUp } from '../paths.js';

/** The drizzle-kit migration folder of an engine (migrations/sqlite or migrations/postgres). */
export function migrationsFolder(engine: 'sqlite' | 'postgres'): string {
  const journal = findUp(join('migrations', engine, 'meta', '_journal.json'));
  if (journal === null) throw new Error(`The migrations/${engine} folder was not found above the running code.`);
  return dirname(dirname(journal));
}
