import type { Store } from '../store.js';

export async function createPostgresStore(_url: string): Promise<Store> {
  throw new Error('PostgreSQL store: not yet implemented');
}
