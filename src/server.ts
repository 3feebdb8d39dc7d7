import { once } from 'node:events';
import { createApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { buildDeps } from './deps.js';

/** The entry point: real dependencies, listening, clean shutdown on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  const deps = buildDeps(config);
  const { logger } = deps;
  const server = createApp(deps).listen(config.PORT, config.HOST);
  await once(server, 'listening');
  // A synchronous upload of 20 rows against the real directory takes ~2 minutes:
  // the inbound server must not cut it off (Node's default requestTimeout is 5 min).
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  const address = server.address();
  logger.info('listening', {
    url: typeof address === 'object' && address ? `http://${address.address}:${address.port}` : String(address),
    directory: config.HOSPITAL_API_BASE_URL,
    database: config.DATABASE_PATH,
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    server.close(() => {
      deps.close();
      logger.info('stopped');
      process.exit(0);
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

await main();
