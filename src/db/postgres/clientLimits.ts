import { and, eq, gt, like, lte, sql } from 'drizzle-orm';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import { clientHits } from './schema.js';

/** The database's clock, in epoch ms: every instance reads the same one. */
const NOW_MS = sql`(extract(epoch from clock_timestamp()) * 1000)::bigint`;
const SWEEP_EVERY_MS = 60_000;

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
    private readonly db: NodePgDatabase,
    readonly prefix: string,
  ) {}

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  async increment(key: string): Promise<ClientRateLimitInfo> {
    await this.sweep();
    const expired = sql`${clientHits.resetAt} <= ${NOW_MS}`;
    const result = await this.db.execute<{ hits: number; reset_at: string; now: string }>(sql`
      insert into ${clientHits} (key, hits, reset_at) values (${this.prefix + key}, 1, ${NOW_MS} + ${this.windowMs})
      on conflict (key) do update set
        hits = case when ${expired} then 1 else ${clientHits.hits} + 1 end,
        reset_at = case when ${expired} then excluded.reset_at else ${clientHits.resetAt} end
      returning hits, reset_at, ${NOW_MS} as now`);
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
