/** Which database engine this test file runs on: jest's `postgres` project sets TEST_ENGINE. */
export type TestEngine = 'sqlite' | 'postgres';

export function testEngine(): TestEngine {
  const engine = process.env.TEST_ENGINE ?? 'sqlite';
  if (engine !== 'sqlite' && engine !== 'postgres') {
    throw new Error(`TEST_ENGINE must be "sqlite" or "postgres", not "${engine}"`);
  }
  return engine;
}

/** The URL of the PostgreSQL server that the postgres project's globalSetup started. */
export function testPostgresUrl(): string {
  const url = process.env.TEST_PG_URL;
  if (!url) {
    throw new Error(
      'TEST_PG_URL is not set: run this file through jest\'s "postgres" project (see jest.config.js), ' +
        'whose globalSetup starts the server',
    );
  }
  return url;
}

/** A database on that server with every migration applied, for tests to copy (never to connect to). */
export function testPostgresMigrated(): string {
  const name = process.env.TEST_PG_MIGRATED;
  if (!name) throw new Error('TEST_PG_MIGRATED is not set: the postgres project\'s globalSetup makes it (see jest.config.js)');
  return name;
}
