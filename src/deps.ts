import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from './config.js';
import { openStore } from './db/index.js';
import { openPacing } from './db/pacing.js';
import { createDirectoryClient } from './directory/client.js';
import { createLifecycle } from './lifecycle.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics } from './ops/metrics.js';

/** The composition root: every real dependency, built once from the config. */
export async function buildDeps(config: Config, logger: Logger = createLogger(config)) {
  const store = await openStore(config);
  const pacing = await openPacing(config, logger);
  const metrics = createMetrics(store);
  const directory = createDirectoryClient(config, logger, { limiter: pacing.directory, observer: metrics.directoryObserver });
  return {
    config,
    logger,
    store,
    directory,
    pacing,
    metrics,
    lifecycle: createLifecycle(),
    /** Owner name in batch leases: unique per process, readable in logs. */
    instanceId: config.INSTANCE_ID ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
    async close(): Promise<void> {
      directory.close();
      await pacing.close();
      await store.close();
    },
  };
}

export type Deps = Awaited<ReturnType<typeof buildDeps>>;
