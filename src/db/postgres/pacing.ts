import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import { KeyedQueue, queueWaitMs, type DirectoryLimiter, type LimiterWait } from '../../directory/limiter.js';
import type { Logger } from '../../logger.js';
import { directoryBlocks, directoryHolds } from './schema.js';
import { listen } from './listen.js';

/** Told the key of every released slot, so another instance's waiter looks again at once. */
const CHANNEL = 'hospital_bulk_pacing';
/** The database's clock, in epoch ms: every instance reads the same one. */
export const NOW_SQL = '(extract(epoch from clock_timestamp()) * 1000)::bigint';
export const NOW_MS = sql.raw(NOW_SQL);
/** The longest a waiter sleeps without looking again, in case a NOTIFY was lost with its connection. */
const POLL_MS = 1_000;
const SWEEP_EVERY_MS = 60_000;
/** How old the estimate's picture of a key may be before it is read again (in the background). */
const ESTIMATE_FRESH_MS = 1_000;
/**
 * How long a stale picture waits before it is read: a request of this process about to
 * claim a slot of the key (the next row's create) brings a fresh one for free meanwhile.
 */
const REFRESH_AFTER_MS = 50;
/**
 * How long a finished request's release may wait to ride along with the next claim (the
 * next row's create) instead of costing a statement of its own. A later release only holds
 * the slot a little longer: it never lets more requests through.
 */
const RELEASE_WITHIN_MS = 10;

export interface PostgresLimiterOptions {
  /** The directory's window. */
  windowMs: number;
  /** How long a hold lasts if its instance never releases it (died): the request timeout plus one window. */
  holdMs: number;
  logger: Logger;
}

/** What the database showed of one key: its clock, each live slot, its 429 block. */
interface KeyPicture {
  now: number;
  /** Date.now() when `now` was read: converts the database's times to this process's clock. */
  localAt: number;
  live: { freeAt: number; released: boolean }[];
  blockedUntil: number;
}

/**
 * The directory's pacing shared by every instance on one PostgreSQL database: the same
 * contract and safety argument as the in-process RateLimiter (src/directory/limiter.ts), on
 * the database's clock. A request takes a slot (a row of directory_holds) before it is sent
 * and releases it after its answer; a released slot still counts for one window, so no
 * fixed window of the directory's ever sees more than `limit` requests of all instances.
 *
 * A slot is stamped at once with the bound of its hold (now + `holdMs`: the request timeout
 * plus a window, and a margin), so the slot of an instance that died frees by itself: its
 * request reached the directory, if at all, before its timeout, so its window closed before
 * the bound.
 *
 * Within a process, callers of one key queue first come first served (as in RateLimiter);
 * only the head of each queue asks the database, claiming slots for everyone queued behind
 * it in the same statement, and it sleeps until the soonest slot frees, a release anywhere
 * (LISTEN/NOTIFY), or POLL_MS, whichever comes first.
 */
export class PostgresRateLimiter implements DirectoryLimiter {
  private readonly queue = new KeyedQueue();
  private readonly wakers = new Map<string, AbortController>();
  private readonly pictures = new Map<string, KeyPicture>();
  private readonly refreshing = new Set<string>();
  private readonly refreshTimers = new Map<string, NodeJS.Timeout>();
  /** Slots claimed for callers queued behind the one that claimed them. */
  private readonly spares = new Map<string, Hold[]>();
  private lastSweep = 0;
  /** Slots whose requests have finished, released with the next claim or within RELEASE_WITHIN_MS. */
  private toRelease: Release[] = [];
  private releaseTimer: NodeJS.Timeout | undefined;
  private readonly releasing = new Set<Promise<void>>();

  private constructor(
    private readonly db: NodePgDatabase & { $client: pg.Pool },
    private readonly listener: { close(): Promise<void> },
    private readonly options: PostgresLimiterOptions,
  ) {}

  /** Starts listening for releases on a connection of its own to `url`, and serves the limiter on `db`. */
  static async open(db: NodePgDatabase & { $client: pg.Pool }, url: string, options: PostgresLimiterOptions): Promise<PostgresRateLimiter> {
    let limiter: PostgresRateLimiter | undefined;
    // Released slots on any instance wake the waiters here.
    const listener = await listen(url, CHANNEL, (key) => limiter?.wake(key));
    limiter = new PostgresRateLimiter(db, listener, options);
    return limiter;
  }

  acquire(key: string, limit: number, onWait?: (wait: LimiterWait) => void): Promise<() => void> {
    return this.queue.run(key, () => this.takeSlot(key, limit, onWait));
  }

  async block(key: string, untilMs: number): Promise<void> {
    const forMs = Math.max(0, Math.round(untilMs - Date.now()));
    try {
      await this.db.execute(sql`
        insert into ${directoryBlocks} (key, blocked_until) values (${key}, ${NOW_MS} + ${forMs})
        on conflict (key) do update set blocked_until = greatest(${directoryBlocks.blockedUntil}, excluded.blocked_until)`);
    } catch (error) {
      // The slot of the refused request still holds its own window; the others may meet a 429 too, and wait then.
      this.options.logger.warn('pacing: could not record a 429 block', { key, error: messageOf(error) });
    }
  }

  estimatedWaitMs(key: string, limit: number, extraRequests = 1): number {
    const now = Date.now();
    const picture = this.pictures.get(key);
    if (!picture || now - picture.localAt > ESTIMATE_FRESH_MS) this.refresh(key);
    const toLocal = (at: number) => at + (picture ? picture.localAt - picture.now : 0);
    return queueWaitMs({
      now,
      freeAt: (picture?.live ?? [])
        .filter((slot) => toLocal(slot.freeAt) > now)
        .map((slot) => (slot.released ? toLocal(slot.freeAt) : Number.POSITIVE_INFINITY)),
      blockedUntil: picture ? toLocal(picture.blockedUntil) : 0,
      queued: this.queue.waiting(key) + extraRequests,
      limit,
      windowMs: this.options.windowMs,
    });
  }

  /** Stores the releases still on their way, stops listening; the pool belongs to the caller. */
  async close(): Promise<void> {
    this.flushReleases();
    await Promise.all(this.releasing);
    for (const timer of this.refreshTimers.values()) clearTimeout(timer);
    for (const waker of this.wakers.values()) waker.abort();
    await this.listener.close();
  }

  private async takeSlot(key: string, limit: number, onWait?: (wait: LimiterWait) => void): Promise<() => void> {
    let toldUntil = 0;
    for (;;) {
      const spare = this.spares.get(key)?.shift();
      if (spare) return () => this.release(key, spare);
      await this.sweepNow();
      // One statement for everyone queued here: a wave of requests does not wait on a round trip each.
      const { taken, picture } = await this.claim(key, limit, this.queue.waiting(key));
      this.remember(key, picture);
      const [mine, ...rest] = taken;
      if (mine) {
        if (rest.length > 0) this.spares.set(key, [...(this.spares.get(key) ?? []), ...rest]);
        else if (this.spares.get(key)?.length === 0) this.spares.delete(key);
        return () => this.release(key, mine);
      }

      const { now, live, blockedUntil } = picture;
      const blocked = blockedUntil > now;
      // It looked free, but another claim took that slot first: look again at once.
      if (!blocked && live.length < limit) continue;
      const released = live.filter((slot) => slot.released).map((slot) => slot.freeAt);
      // While every slot is in flight the wait has no length yet: tell it once it has one,
      // and again only if it moved later (a 429 meanwhile), as RateLimiter does.
      const until = blocked ? blockedUntil : Math.min(...released);
      if (Number.isFinite(until) && until > toldUntil) {
        toldUntil = until;
        onWait?.({ delayMs: until - now, blocked });
      }
      // A slot in flight frees at its release (NOTIFY) or, if its instance died, at its bound.
      const wakeAt = blocked ? blockedUntil : Math.min(...live.map((slot) => slot.freeAt));
      await this.sleepUnlessWoken(key, Math.min(POLL_MS, wakeAt - now));
    }
  }

  /**
   * Takes up to `wanted` of the lowest slots of `key` that are free in this statement's
   * snapshot, unless a 429 block holds; says what it saw. Safe without a lock: the primary
   * key (key, slot) with slot < limit caps the holds, and a slot row is taken over only if
   * its LATEST version has expired (ON CONFLICT … WHERE sees the committed row, not the
   * snapshot), so two instances claiming at once can never both get one slot.
   * The releases queued meanwhile (of any key) go in the same statement.
   */
  private async claim(key: string, limit: number, wanted: number): Promise<{ taken: Hold[]; picture: KeyPicture }> {
    const released = this.takeReleases();
    const values = [key, randomUUID(), this.options.holdMs, limit, Math.max(1, wanted), JSON.stringify(released), this.options.windowMs, CHANNEL];
    let result;
    try {
      // Named: each connection plans it once (it is on the way of every request).
      result = await this.db.$client.query<PictureRow & { taken: Hold[] }>({ name: 'pacing_claim', text: CLAIM, values });
    } catch (error) {
      // Nothing of the statement was stored: the releases go out on their own.
      for (const release of released) this.queueRelease(release);
      throw error;
    }
    this.wakeAll(released);
    const row = result.rows[0]!;
    return { taken: row.taken, picture: toPicture(row) };
  }

  /**
   * The slot counts one more window from now, on the database's clock; waiters everywhere
   * look again. Not awaited by the request that held it (its answer goes on at once): it
   * rides along with this process's next claim (a row-by-row batch's next create), or goes
   * out with the others queued within RELEASE_WITHIN_MS in one statement. Waiters here look
   * again at once (their claim carries it).
   */
  private release(key: string, hold: Hold): void {
    this.queueRelease({ key, ...hold });
    this.wake(key);
  }

  private queueRelease(release: Release): void {
    this.toRelease.push(release);
    this.releaseTimer ??= setTimeout(() => this.flushReleases(), RELEASE_WITHIN_MS);
  }

  private takeReleases(): Release[] {
    clearTimeout(this.releaseTimer);
    this.releaseTimer = undefined;
    const taken = this.toRelease;
    this.toRelease = [];
    return taken;
  }

  /** Stores the queued releases now, in one statement. */
  private flushReleases(): void {
    const held = this.takeReleases();
    if (held.length === 0) return;
    const flushed = this.db.$client
      .query({ name: 'pacing_release', text: RELEASE, values: [JSON.stringify(held), this.options.windowMs, CHANNEL] })
      .then(
        () => this.wakeAll(held),
        (error: unknown) => {
          this.options.logger.warn('pacing: could not release slots; they free when their holds expire', { keys: [...new Set(held.map((h) => h.key))], error: messageOf(error) });
        },
      );
    this.releasing.add(flushed);
    void flushed.finally(() => this.releasing.delete(flushed));
  }

  private wakeAll(released: readonly Release[]): void {
    for (const key of new Set(released.map((h) => h.key))) this.wake(key);
  }

  private wake(key: string): void {
    this.wakers.get(key)?.abort();
  }

  private async sleepUnlessWoken(key: string, ms: number): Promise<void> {
    const waker = new AbortController();
    this.wakers.set(key, waker);
    try {
      await sleep(Math.max(1, ms), undefined, { signal: waker.signal });
    } catch {
      // woken: look again
    } finally {
      if (this.wakers.get(key) === waker) this.wakers.delete(key);
    }
  }

  private remember(key: string, picture: KeyPicture): void {
    this.pictures.set(key, picture);
    // Per-batch keys are used for a few minutes and then never again: forget spent ones.
    if (this.pictures.size > 64) {
      for (const [other, seen] of this.pictures) {
        if (Date.now() - seen.localAt > this.options.holdMs) this.pictures.delete(other);
      }
    }
  }

  /**
   * Reads a key's picture for the estimate, in the background, once at a time, after
   * REFRESH_AFTER_MS, unless a claim brought a fresh one meanwhile.
   */
  private refresh(key: string): void {
    if (this.refreshing.has(key)) return;
    this.refreshing.add(key);
    const stale = () => Date.now() - (this.pictures.get(key)?.localAt ?? 0) > ESTIMATE_FRESH_MS;
    const timer = setTimeout(() => {
      this.refreshTimers.delete(key);
      if (!stale()) return this.refreshing.delete(key);
      void this.db.$client
        .query<PictureRow>({ name: 'pacing_picture', text: PICTURE, values: [key] })
        .then((result) => this.remember(key, toPicture(result.rows[0]!)))
        .catch((error: unknown) => this.options.logger.debug('pacing: could not refresh an estimate', { key, error: messageOf(error) }))
        .finally(() => this.refreshing.delete(key));
    }, REFRESH_AFTER_MS);
    this.refreshTimers.set(key, timer);
  }

  /** Deletes spent slots and blocks of every key, at most once a minute; rows another statement holds are left for next time. */
  private async sweepNow(): Promise<void> {
    if (Date.now() - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = Date.now();
    try {
      await this.db.execute(sql`
        delete from ${directoryHolds} where (key, slot) in (
          select key, slot from ${directoryHolds} where free_at <= ${NOW_MS} for update skip locked)`);
      await this.db.execute(sql`
        delete from ${directoryBlocks} where key in (
          select key from ${directoryBlocks} where blocked_until <= ${NOW_MS} for update skip locked)`);
    } catch (error) {
      this.options.logger.warn('pacing: could not sweep spent slots', { error: messageOf(error) });
    }
  }
}

/** One slot held by this process: the hold id tells its release from a later holder's. */
interface Hold {
  slot: number;
  holdId: string;
}

/** A slot of `key` whose request has finished. */
type Release = Hold & { key: string };

type PictureRow = {
  now: string;
  blocked_until: string | null;
  live: { free_at: number; released: boolean }[];
};

/**
 * Makes the statement's commit return before its WAL is flushed (synchronous_commit=off for
 * this transaction only), saving a flush on the way of every request's claim. What it can
 * lose is a hold written in the last moments before the database server itself crashes:
 * then a window may meet more requests than the limit, the directory answers 429, and
 * a 429 is never created and always retried after the window (src/directory/transport.ts).
 * The rows' own commits keep their flush: a row is `creating` on disk before its create leaves.
 */
const ASYNC_COMMIT = `set_config('synchronous_commit', 'off', true)`;

/** The slots of key $1 that count now, as they stand in the table (needs `clock`). */
const LIVE_CTE = `live as (select h.slot, h.free_at, h.released from directory_holds h, clock where h.key = $1::text and h.free_at > clock.now)`;
/** Key $1's 429 block, if one holds (needs `clock`). */
const BLOCK_CTE = `block as (select b.blocked_until from directory_blocks b, clock where b.key = $1::text and b.blocked_until > clock.now)`;
/** What a picture is made of: the clock, the block, every live slot (needs `clock`, `live` and `block`). */
const PICTURE_COLUMNS = `
  clock.now, (select blocked_until from block) as blocked_until,
  coalesce((select json_agg(json_build_object('free_at', free_at, 'released', released)) from live), '[]'::json) as live`;

/** What the database shows of key $1 now. */
const PICTURE = `with clock as (select ${NOW_SQL} as now), ${LIVE_CTE}, ${BLOCK_CTE} select ${PICTURE_COLUMNS} from clock`;

/**
 * Releases the holds in $6 (JSON [{key, slot, holdId}]): each counts $7 ms more from now,
 * announced on channel $8. Then takes up to $5 of the lowest slots (0 … $4 - 1) of key $1
 * that are free in this statement's snapshot, for hold $2 bound $3 ms from now, unless a 429
 * block holds; says what it saw, as if the releases had been stored first (see claim). A
 * slot released here is live (it counts for a window), so the taking never touches a row
 * the releasing does.
 */
const CLAIM = `
  with clock as (select ${NOW_SQL} as now, ${ASYNC_COMMIT} as async_commit),
  rel as (select r.key, r.slot, r."holdId" as hold_id from json_to_recordset($6::json) as r(key text, slot integer, "holdId" text)),
  released as (
    update directory_holds h set free_at = clock.now + $7::bigint, released = true from rel, clock
    where h.key = rel.key and h.slot = rel.slot and h.hold_id = rel.hold_id and h.free_at > clock.now returning h.key),
  announced as (select pg_notify($8::text, key) from (select distinct key from released) keys),
  live as (
    select h.slot, case when rel.slot is null then h.free_at else clock.now + $7::bigint end as free_at, h.released or rel.slot is not null as released
    from directory_holds h cross join clock left join rel on rel.key = h.key and rel.slot = h.slot and rel.hold_id = h.hold_id
    where h.key = $1::text and h.free_at > clock.now),
  ${BLOCK_CTE},
  taken as (
    insert into directory_holds (key, slot, hold_id, free_at)
    select $1::text, s, $2::text, clock.now + $3::bigint from clock, generate_series(0, $4::integer - 1) s
    where not exists (select 1 from block) and not exists (select 1 from live where live.slot = s)
    order by s limit $5::integer
    on conflict (key, slot) do update set hold_id = excluded.hold_id, free_at = excluded.free_at, released = false
      where directory_holds.free_at <= ${NOW_SQL}
    returning slot)
  select ${PICTURE_COLUMNS},
    coalesce((select json_agg(json_build_object('slot', slot, 'holdId', $2::text) order by slot) from taken), '[]'::json) as taken,
    (select count(*) from announced) as announced
  from clock`;

/** Releases the holds in $1 (JSON [{key, slot, holdId}]): each counts $2 ms more from now; announces each key on channel $3. */
const RELEASE = `
  with released as (
    update directory_holds h set free_at = ${NOW_SQL} + $2::bigint, released = true
    from json_to_recordset($1::json) as r(key text, slot integer, "holdId" text)
    where h.key = r.key and h.slot = r.slot and h.hold_id = r."holdId" returning h.key)
  select pg_notify($3::text, key) from (select distinct key from released) keys`;

function toPicture(row: PictureRow): KeyPicture {
  return {
    now: Number(row.now),
    localAt: Date.now(),
    live: row.live.map((slot) => ({ freeAt: Number(slot.free_at), released: slot.released })),
    blockedUntil: row.blocked_until === null ? 0 : Number(row.blocked_until),
  };
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
