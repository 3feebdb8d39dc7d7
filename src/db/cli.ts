/**
 * The database's own commands, run from the built code (`npm run build` first, as for
 * `npm start`):
 *
 *   npm run db:migrate                      migrations of the configured engine, then exit
 *   npm run db:copy -- --to postgres://…    the SQLite history into an empty PostgreSQL
 *                 [--from path/to/history.db]   (default: DATABASE_PATH; --to defaults to DATABASE_URL)
 *
 * Exit status: 0 done, 1 the database refused or could not be reached (one line on stderr
 * saying why), 2 the command line or the configuration is wrong. No password is printed.
 */
import { parseArgs } from 'node:util';
import { ConfigError, configSchema, loadConfig, type Config } from '../config.js';
import { copySqliteToPostgres, type CopyReport } from './copy.js';
import { migrateDatabase } from './migrate.js';
import { DatabaseError, redactUrl } from './postgres/url.js';

const USAGE = `Usage:
  npm run db:migrate
      Applies the pending migrations of the configured database (DATABASE_URL, else the
      SQLite file at DATABASE_PATH) and exits. The service also migrates at start-up.
  npm run db:copy -- --to postgres://user:password@host:5432/db [--from path/to/history.db]
      Copies the SQLite history (default: DATABASE_PATH) into an EMPTY PostgreSQL database
      (default: DATABASE_URL), migrating it first. Stop the service while it copies.
`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'migrate') return migrate(rest);
  if (command === 'copy') return copy(rest);
  throw new UsageError(command === undefined ? 'Which command: migrate or copy?' : `Unknown command "${command}".`);
}

async function migrate(args: string[]): Promise<number> {
  parseArgs({ args, options: {} });
  const config = configOrThrow();
  const where = config.DATABASE_URL ? `PostgreSQL at ${redactUrl(config.DATABASE_URL)}` : `SQLite at ${config.DATABASE_PATH}`;
  console.log(`Migrating ${where} ...`);
  const report = await migrateDatabase(config);
  console.log(
    report.applied.length === 0
      ? `Nothing to apply: the database is up to date (${report.current}).`
      : `Applied ${report.applied.length} migration(s): ${report.applied.join(', ')}. The database is now at ${report.current}.`,
  );
  return 0;
}

async function copy(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { from: { type: 'string' }, to: { type: 'string' } } });
  const config = values.from !== undefined && values.to !== undefined ? undefined : configOrThrow();
  const from = values.from ?? config!.DATABASE_PATH;
  const to = values.to ?? config?.DATABASE_URL;
  if (to === undefined) throw new UsageError('Where to? Give the PostgreSQL database as --to postgres://… (or set DATABASE_URL).');
  const checked = configSchema.shape.DATABASE_URL.safeParse(to);
  if (!checked.success) throw new UsageError(`--to must be a postgres:// or postgresql:// URL, not "${redactUrl(to)}".`);

  console.log(`Copying the SQLite history at ${from} into PostgreSQL at ${redactUrl(to)} ...`);
  const started = performance.now();
  const report = await copySqliteToPostgres({
    from,
    to,
    onTable: (name, rows) => console.log(`  ${name.padEnd(16)} ${rows.toLocaleString('en-US').padStart(10)} rows`),
  });
  printCopy(report, performance.now() - started);
  return 0;
}

function printCopy(report: CopyReport, ms: number): void {
  if (report.migrated.length > 0) console.log(`Migrated the target first: ${report.migrated.join(', ')}.`);
  for (const sequence of report.sequences) console.log(`${sequence.column} continues at ${sequence.next}.`);
  const total = report.tables.reduce((sum, t) => sum + t.rows, 0);
  console.log(`Copied ${total.toLocaleString('en-US')} rows in ${(ms / 1000).toFixed(1)} s, in one transaction. Start the service with DATABASE_URL set to use it.`);
}

function configOrThrow(): Config {
  return loadConfig();
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError || error instanceof ConfigError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
      process.exit(2);
    }
    if (error instanceof DatabaseError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    // A bug: the stack helps, but it must not carry a password (pg's errors do not).
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
