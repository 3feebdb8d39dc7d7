import { drizzle } from 'drizzle-orm/node-postgres';
import type { Store as ClientLimitStore } from 'express-rate-limit';
import type { Config } from '../config.js';
import { RateLimiter, type DirectoryLimiter } from '../directory/limiter.js';
import type { Logger } from '../logger.js';
import { PostgresClientLimitStore } from './postgres/clientLimits.js';
import { PostgresRateLimiter } from './postgres/pacing.js';
import { createPool } from './postgres/pool.js';

export interface Pacing {
  /** Paces every request to the directory. */
  directory: DirectoryLimiter;
  /** The store of one per-client limit of our API (`prefix` names it); undefined: express-rate-limit's memory. */
  clientLimitStore(prefix: string): ClientLimitStore | undefined;
  close(): Promise<void>;
}

/**
 * Limits that hold across every instance on PostgreSQL (DATABASE_URL), on its own small pool;
 * in this process on SQLite, where one instance is all there is. The tables come with the
 * store's migrations: open the store first.
 */
export async function openPacing(
  config: Pick<Config, 'DATABASE_URL' | 'UPSTREAM_RATE_WINDOW_MS' | 'UPSTREAM_TIMEOUT_MS'>,
  logger: Logger,
): Promise<Pacing> {
  if (!config.DATABASE_URL) {
    return { directory: new RateLimiter(config.UPSTREAM_RATE_WINDOW_MS), clientLimitStore: () => undefined, close: async () => undefined };
  }
  // Two kept open, both opened at the first upload: a claim, and the releases or an API client's count beside it.
  const pool = createPool(config.DATABASE_URL, { max: 4, keep: 2, eager: true });
  const db = drizzle(pool);
  const directory = await PostgresRateLimiter.open(db, config.DATABASE_URL, {
    windowMs: config.UPSTREAM_RATE_WINDOW_MS,
    // Plus a second for the moments between taking a slot and sending (a busy event loop).
    holdMs: config.UPSTREAM_TIMEOUT_MS + config.UPSTREAM_RATE_WINDOW_MS + 1_000,
    logger,
  }).catch(async (error: unknown) => {
    await pool.end();
    throw error;
  });
  let closed: Promise<void> | undefined;
  return {
    directory,
    clientLimitStore: (prefix) => new PostgresClientLimitStore(db, prefix),
    // Safe to call twice (a test's close after a restart's).
    close: () =>
      (closed ??= (async () => {
        await directory.close();
        await pool.end();
      })()),
  };
}
