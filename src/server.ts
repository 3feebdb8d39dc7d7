import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createApp } from './app.js';
import { apiKeys, ConfigError, loadConfig, type Config } from './config.js';
import { startTakeover } from './bulk/takeover.js';
import { startWebhookDelivery } from './ops/webhooks.js';
import { buildDeps } from './deps.js';
import { createHttpServer } from './http/httpServer.js';

/** The entry point: real dependencies, start-up recovery, listening, graceful shutdown. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  const deps = await buildDeps(config);
  const { logger } = deps;

  // Whatever a killed process left running cannot still be running: make it resumable.
  // On PostgreSQL other instances may be running theirs: only expired leases are orphans.
  const orphans = await deps.store.interruptOrphans({ leaseExpiredOnly: deps.store.engine === 'postgres', leaseMs: config.BATCH_LEASE_MS });
  for (const batchId of orphans) {
    logger.warn(
      config.AUTO_RESUME ? 'batch interrupted by an earlier stop; finishing it now' : 'batch interrupted by an earlier stop; resume it with POST /batches/:id/resume',
      { batch_id: batchId },
    );
  }

  const server = createHttpServer(createApp(deps), config);
  server.listen(config.PORT, config.HOST);
  await once(server, 'listening');
  if (apiKeys(config).length === 0 && config.NODE_ENV === 'production') {
    // Only reachable with ALLOW_NO_API_KEY=true: loadConfig refuses production without a key otherwise.
    logger.warn('API_KEY is not set (ALLOW_NO_API_KEY=true): the API relies on the authentication in front of this service');
  }
  // From here on this instance also finishes what stopped instances left (or marks it interrupted).
  const takeover = startTakeover(deps);
  // Completion webhooks left in the outbox by any instance (and by this one before a restart).
  const webhooks = startWebhookDelivery(deps);
  const address = server.address();
  logger.info('listening', {
    url: typeof address === 'object' && address ? `http://${address.address}:${address.port}` : String(address),
    directory: config.HOSPITAL_API_BASE_URL,
    database: deps.store.engine === 'sqlite' ? config.DATABASE_PATH : 'postgres',
    instance: deps.instanceId,
    auto_resume: config.AUTO_RESUME,
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    // Neither loop starts anything new; what each has in flight is awaited below.
    const loops = Promise.all([takeover.stop(), webhooks.stop()]);
    logger.info('shutting down: no new work; running batches stop after the row in flight', {
      signal,
      grace_ms: config.SHUTDOWN_GRACE_MS,
    });
    // Listen for 'close' now: it can fire before the batches below have finished stopping.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Each running batch finishes its row (or gives up after the grace period), records
    // itself as interrupted and answers its waiting client with the partial report.
    await deps.lifecycle.stop();
    server.closeIdleConnections();
    await Promise.race([closed, sleep(2_000)]);
    // Before the database closes: a webhook delivery in flight records its answer (or its
    // receiver would get the event again), and a batch that started meanwhile (claimed by
    // a take-over look in flight, or admitted just before the signal) records how it
    // stopped and answers its client. Within the grace period; what misses it is left as a
    // crash would leave it, for another instance or the next start.
    const settled = loops.then(() => deps.lifecycle.stop()).then(() => true);
    if (!(await Promise.race([settled, sleep(config.SHUTDOWN_GRACE_MS).then(() => false)]))) {
      logger.warn('shutting down: work still in flight after the grace period is left to another instance or the next start', { grace_ms: config.SHUTDOWN_GRACE_MS });
    }
    server.closeAllConnections();
    await deps.close();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

await main();
