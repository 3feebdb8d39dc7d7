/**
 * got, p-retry and csv-parse ship ESM only, so the suite runs as native ESM
 * (node --experimental-vm-modules, see the `test` script) and ts-jest only
 * transpiles: `npm test` type-checks the whole tree with tsc first.
 *
 * Two projects: `sqlite` runs every suite but the `*.pg.test.ts` ones; `postgres` runs those and the suites listed below
 * again against one real PostgreSQL server that its globalSetup starts (only when one of
 * them is selected) and passes on as TEST_PG_URL; they see TEST_ENGINE=postgres.
 */
/*
 * The suites whose outcome can depend on the store. Not the CLI's (it speaks only HTTP; the
 * answers it reads are checked on PostgreSQL by bulk, async, recovery, cancel and openapi),
 * nor the file-reading ones, formats and blank.property (the rows they hand the store are
 * records like any other; hostile, which runs here, checks that text of every script comes
 * back byte-equal from the history). Each PostgreSQL run of a suite costs CI its time again.
 */
const POSTGRES_SUITES = ['pg.smoke', 'pg.pacing', 'instances-pacing', 'bulk', 'async', 'fixAndFinish', 'files', 'concurrency', 'security', 'hostile', 'openapi', 'recovery', 'instances', 'hardening', 'dbcopy', 'lost-answers', 'bigFiles', 'upgrade', 'store', 'ops', 'cancel', 'keys', 'webhooks'];

const base = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true }] },
};

/** @type {import('jest').Config} */
export default {
  testTimeout: 20000,
  // Three test files at a time on CI's 2 cores: the suite mostly waits (on the simulator's
  // create delays, leases, child processes), so two workers left a quarter of the CPU idle;
  // three took the suite from 284-332 s to 248-286 s here, and passed every run, as two
  // workers did beside a process that kept a core busy. The files share nothing: every server
  // binds port 0 or holds its port (tests/service-process.ts, tests/helpers.ts
  // closedPortUrl), each file has its own temp dirs and, on PostgreSQL, its own databases
  // on the one server.
  maxWorkers: 3,
  projects: [
    {
      ...base,
      displayName: 'sqlite',
      testMatch: ['**/*.test.ts'],
      // Need the server only the postgres project starts (several instances share one only there).
      testPathIgnorePatterns: ['/node_modules/', '/tests/(pg\\.smoke|pg\\.pacing|instances-pacing|dbcopy)\\.test\\.ts$', '\\.pg\\.test\\.ts$'],
    },
    {
      ...base,
      displayName: 'postgres',
      testMatch: [...POSTGRES_SUITES.map((name) => `<rootDir>/tests/${name}.test.ts`), '<rootDir>/tests/*.pg.test.ts'],
      globalSetup: '<rootDir>/tests/pg/global-setup.ts',
      globalTeardown: '<rootDir>/tests/pg/global-teardown.ts',
      setupFiles: ['<rootDir>/tests/pg/as-postgres.ts'],
    },
  ],
};
