/**
 * globalSetup of jest's `postgres` project: one PostgreSQL server for the whole run. Jest
 * runs it only when a test of that project is selected, in its own process, before it
 * starts the workers, which inherit TEST_PG_URL from this process's environment.
 *
 * Jest loads this file with Node's own loader, not its module mapper, so Node would look
 * for a server.js that does not exist: tsx loads the TypeScript instead.
 */
import { tsImport } from 'tsx/esm/api';
import type { PostgresServer } from './server.js';

type ServerModule = typeof import('./server.js');
type MigrateModule = typeof import('../../src/db/migrate.js');

declare global {
  // Read back by global-teardown.ts, which jest runs in this same process.
  var __testPostgres: PostgresServer | undefined;
}

export default async function globalSetup(): Promise<void> {
  const { createTestDatabase, startPostgres } = (await tsImport('./server.ts', import.meta.url)) as ServerModule;
  const started = Date.now();
  const server = await startPostgres();
  globalThis.__testPostgres = server;
  process.env.TEST_PG_URL = server.url;
  // Migrated once, by `npm run db:migrate`'s own code, and copied for every test's stack
  // (tests/helpers.ts startStack): a copy costs less than migrating each new database.
  const { migrateDatabase } = (await tsImport('../../src/db/migrate.ts', import.meta.url)) as MigrateModule;
  const migrated = await createTestDatabase(server.url);
  await migrateDatabase({ DATABASE_URL: migrated.url, DATABASE_PATH: '' });
  process.env.TEST_PG_MIGRATED = migrated.name;
  if (process.env.TEST_PG_VERBOSE) {
    process.stderr.write(`\nPostgreSQL (${server.binary}) started in ${Date.now() - started} ms\n`);
  }
}
