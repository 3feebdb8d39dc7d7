import type { Config } from '../config.js';
import { createPostgresStore } from './postgres/store.js';
import { createSqliteStore } from './sqlite/store.js';
import type { Store } from './store.js';

/** The history on PostgreSQL when DATABASE_URL is set, else on the SQLite file at DATABASE_PATH; migrated. */
export async function openStore(config: Pick<Config, 'DATABASE_URL' | 'DATABASE_PATH'> & Partial<Pick<Config, 'WEBHOOK_URL'>>): Promise<Store> {
  // With a webhook URL, finishing a batch also writes its delivery, in the same transaction.
  const outbox = config.WEBHOOK_URL !== undefined;
  return config.DATABASE_URL ? createPostgresStore(config.DATABASE_URL, { outbox }) : createSqliteStore(config.DATABASE_PATH, { outbox });
}
