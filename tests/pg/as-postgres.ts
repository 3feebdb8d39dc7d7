// setupFiles of jest's `postgres` project: runs in each test file's own environment, so
// only that project's files see it (a worker runs files of both projects).
process.env.TEST_ENGINE = 'postgres';
