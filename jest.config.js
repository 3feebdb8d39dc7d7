/**
 * got, p-retry and csv-parse ship ESM only, so the suite runs as native ESM
 * (node --experimental-vm-modules, see the `test` script) and ts-jest only
 * transpiles: `npm test` type-checks the whole tree with tsc first.
 */
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true }] },
  testTimeout: 20000,
};
