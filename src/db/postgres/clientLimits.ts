import { and, eq, gt, like, lte, sql } from 'drizzle-orm';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import { NOW_MS, NOW_SQL } from './pacing.js';
import { clientHits } from './schema.js';

const SWEEP_EVERY_MS = 60_000;
/** Counts a hit of key $1 in its window ($2 ms from its first hit), opening a new window once the last has passed. */
const INCREMENT = `
  insert into client_hits (key, hits, reset_at) values ($1::text, 1, ${NOW_SQL} + $2::bigint)
  on conflict (key) do update set
    hits = case when client_hits.reset_at <= ${NOW_SQL} then 1 else client_hits.hits + 1 end,
    reset_at = case when client_hits.reset_at <= ${NOW_SQL} then excluded.reset_at else client_hits.reset_at end
  returning hits, reset_at, ${NOW_SQL} as now`;

/**
 * An express-rate-limit store on PostgreSQL, so a per-client limit holds across every
 * instance: a fixed window per key (opened by its first hit, on the database's clock),
 * counted by one atomic upsert.
 */
export class PostgresClientLimitStore implements Store {
  readonly localKeys = false;
  private windowMs = 60_000;
  private lastSweep = 0;

  /** `prefix` keeps the counts of different limiters apart in the one table. */
  constructor(
    private readonly db: NodePgDatabase & { $client: pg.Pool },
    readonly prefix: string,
  ) {}

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  async increment(key: string): Promise<ClientRateLimitInfo> {
    await this.sweep();
    // Named: each connection plans it once (it runs before every limited request).
    const result = await this.db.$client.query<{ hits: number; reset_at: string; now: string }>({
      name: 'client_hits_increment',
      text: INCREMENT,
      values: [this.prefix + key, this.windowMs],
    });
    return this.info(result.rows[0]!);
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const result = await this.db.execute<{ hits: number; reset_at: string; now: string }>(sql`
      select hits, reset_at, ${NOW_MS} as now from ${clientHits}
      where ${clientHits.key} = ${this.prefix + key} and ${clientHits.resetAt} > ${NOW_MS}`);
    return result.rows[0] ? this.info(result.rows[0]) : undefined;
  }

  async decrement(key: string): Promise<void> {
    await this.db
      .update(clientHits)
      .set({ hits: sql`greatest(${clientHits.hits} - 1, 0)` })
      .where(and(eq(clientHits.key, this.prefix + key), gt(clientHits.resetAt, NOW_MS)));
  }

  async resetKey(key: string): Promise<void> {
    await this.db.delete(clientHits).where(eq(clientHits.key, this.prefix + key));
  }

  async resetAll(): Promise<void> {
    await this.db.delete(clientHits).where(like(clientHits.key, `${escapeLike(this.prefix)}%`));
  }

  /** The reset time on this process's clock. */
  private info(row: { hits: number; reset_at: string; now: string }): ClientRateLimitInfo {
    return { totalHits: row.hits, resetTime: new Date(Date.now() + Number(row.reset_at) - Number(row.now)) };
  }

  /**
   * Forgets spent windows of every key, at most once a minute; rows another statement holds
   * are left for next time, so two instances sweeping at once never wait on each other.
   */
  private async sweep(): Promise<void> {
    if (Date.now() - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = Date.now();
    await this.db.execute(sql`
      delete from ${clientHits} where key in (
        select key from ${clientHits} where ${lte(clientHits.resetAt, NOW_MS)} for update skip locked)`);
  }
}

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (char) => `\\${char}`);
