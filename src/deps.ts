import { createEventBus } from './bulk/events.js';
import type { Config } from './config.js';
import { openDatabase } from './db/database.js';
import { createDirectoryClient } from './directory/client.js';
import { createLifecycle } from './lifecycle.js';
import { createLogger, type Logger } from './logger.js';

/** The composition root: every real dependency, built once from the config. */
export function buildDeps(config: Config, logger: Logger = createLogger(config)) {
  const database = openDatabase(config.DATABASE_PATH);
  const directory = createDirectoryClient(config, logger);
  return {
    config,
    logger,
    db: database.db,
    directory,
    events: createEventBus(database.db),
    lifecycle: createLifecycle(),
    close(): void {
      directory.close();
      database.close();
    },
  };
}

export type Deps = ReturnType<typeof buildDeps>;
