import { setTimeout as sleep } from 'node:timers/promises';

/** A hold on a request: how long, and whether a 429's block (rather than our own pacing) causes it. */
export interface LimiterWait {
  delayMs: number;
  blocked: boolean;
}

/**
 * What the transport needs from a pacer: the in-process `RateLimiter` below, or the one
 * every instance shares on PostgreSQL (src/db/postgres/pacing.ts); src/db/pacing.ts picks.
 */
export interface DirectoryLimiter {
  /**
   * Resolves when a request for `key` may be sent; call the returned function when it has
   * finished. `onWait` hears each hold it can put a length on (`blocked`: by a 429's block).
   */
  acquire(key: string, limit: number, onWait?: (wait: LimiterWait) => void): Promise<() => void>;
  /** After a 429 the directory's window is still closed: hold every request for `key` until `untilMs` (this clock). */
  block(key: string, untilMs: number): void | Promise<void>;
  /** Roughly how long `extraRequests` more requests for `key` would wait; cheap and synchronous (it feeds progress). */
  estimatedWaitMs(key: string, limit: number, extraRequests?: number): number;
}

/**
 * First come, first served per key within this process: each key's turns run one after
 * another, and `waiting(key)` counts the callers queued or being served.
 */
export class KeyedQueue {
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly counts = new Map<string, number>();

  run<T>(key: string, turn: () => Promise<T>): Promise<T> {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    const result = (this.queues.get(key) ?? Promise.resolve()).then(turn);
    const tail = result.catch(() => undefined);
    this.queues.set(key, tail);
    // Per-batch keys come and go: forget a key's queue once nobody is in it.
    void tail.then(() => {
      const left = (this.counts.get(key) ?? 1) - 1;
      if (left > 0) this.counts.set(key, left);
      else this.counts.delete(key);
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return result;
  }

  waiting(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}

/**
 * Process-wide pacing for the directory: at most `limit` requests per key in any window of
 * `windowMs`, first come, first served.
 *
 * The directory counts a request when it *arrives*, somewhere between our send and its
 * answer, in fixed windows that start at an arrival. So a slot is held from the send
 * until the answer (or failure) plus a full window: then no window of the directory's can
 * ever see more than `limit` of our requests, whatever the network delay, without guessing
 * a safety margin.
 */
export class RateLimiter implements DirectoryLimiter {
  /** Per key: when each taken slot frees up (Infinity while its request is in flight). */
  private readonly slots = new Map<string, { freeAt: number }[]>();
  private readonly blockedUntil = new Map<string, number>();
  private readonly queue = new KeyedQueue();
  private readonly released = new Map<string, AbortController>();

  constructor(private readonly windowMs: number) {}

  /**
   * Resolves when a request for `key` may be sent; call the returned function when it has
   * finished. `onWait` hears each hold it can put a length on (`blocked`: by a 429's block).
   */
  acquire(key: string, limit: number, onWait?: (wait: LimiterWait) => void): Promise<() => void> {
    // Per-batch keys are used for a few minutes and then never again: forget spent ones.
    if (this.slots.size > 64) this.sweep(Date.now());
    return this.queue.run(key, () => this.takeSlot(key, limit, onWait));
  }

  /** After a 429 the directory's window is still closed: hold every request for `key` until `untilMs`. */
  block(key: string, untilMs: number): void {
    this.blockedUntil.set(key, Math.max(untilMs, this.blockedUntil.get(key) ?? 0));
  }

  /**
   * Roughly how long `extraRequests` more requests for `key` would wait behind those queued
   * now; in-flight requests are assumed to finish at once (the estimate errs on the short side).
   */
  estimatedWaitMs(key: string, limit: number, extraRequests = 1): number {
    const now = Date.now();
    return queueWaitMs({
      now,
      freeAt: this.live(key, now).map((slot) => slot.freeAt),
      blockedUntil: this.blockedUntil.get(key) ?? 0,
      queued: this.queue.waiting(key) + extraRequests,
      limit,
      windowMs: this.windowMs,
    });
  }

  private async takeSlot(key: string, limit: number, onWait?: (wait: LimiterWait) => void): Promise<() => void> {
    let toldUntil = 0;
    for (;;) {
      const now = Date.now();
      const slots = this.live(key, now);
      const blocked = (this.blockedUntil.get(key) ?? 0) - now;
      if (blocked <= 0 && slots.length < limit) {
        const slot = { freeAt: Number.POSITIVE_INFINITY };
        slots.push(slot);
        this.slots.set(key, slots);
        return () => {
          slot.freeAt = Date.now() + this.windowMs;
          this.released.get(key)?.abort();
        };
      }
      const soonest = Math.min(...slots.map((slot) => slot.freeAt));
      const until = blocked > 0 ? now + blocked : soonest;
      // While every slot is in flight the wait has no length yet (Infinity): tell it once it
      // has one, and again only if it moved later (a 429 meanwhile), not on every wake-up.
      if (Number.isFinite(until) && until > toldUntil) {
        toldUntil = until;
        onWait?.({ delayMs: until - now, blocked: blocked > 0 });
      }
      await this.waitUntilReleased(key, until - now);
    }
  }

  /** Sleeps `ms` (possibly Infinity), or less if a slot of `key` is released meanwhile. */
  private async waitUntilReleased(key: string, ms: number): Promise<void> {
    const release = new AbortController();
    this.released.set(key, release);
    try {
      // Unreferenced: a wait for the window never keeps a stopping process alive.
      await sleep(Number.isFinite(ms) ? Math.max(1, ms) : 2 ** 31 - 1, undefined, { signal: release.signal, ref: false });
    } catch {
      // released early: look again
    } finally {
      if (this.released.get(key) === release) this.released.delete(key);
    }
  }

  private sweep(now: number): void {
    for (const key of [...this.slots.keys()]) this.live(key, now);
  }

  private live(key: string, now: number): { freeAt: number }[] {
    const slots = (this.slots.get(key) ?? []).filter((slot) => slot.freeAt > now);
    if (slots.length === 0) this.slots.delete(key);
    else this.slots.set(key, slots);
    if ((this.blockedUntil.get(key) ?? 0) <= now) this.blockedUntil.delete(key);
    return slots;
  }
}

/**
 * How long the last of `queued` requests would wait, given when each live slot frees up
 * (Infinity while its request is in flight: assumed to finish at once, so the estimate errs
 * on the short side) and a 429's block. Every time is on one clock, the one of `now`.
 *
 * A slot is held until its request's answer plus one window, and the earliest-free slot is
 * always the next taken, so the queue goes round the slots in order: the i-th queued request
 * (0-based) leaves when the (i mod limit)-th earliest slot is free, plus one window for every
 * round before it. A slot no request holds is free now, and a queued request that takes it
 * holds it too: 200 creates at 30 a window wait six windows, not five.
 */
export function queueWaitMs(state: { now: number; freeAt: number[]; blockedUntil: number; queued: number; limit: number; windowMs: number }): number {
  const { now, limit, windowMs, queued } = state;
  const start = Math.max(now, state.blockedUntil);
  if (queued <= 0) return start - now;
  const slots = state.freeAt
    .map((at) => (Number.isFinite(at) ? at : now + windowMs))
    .sort((a, b) => a - b)
    .slice(0, limit);
  while (slots.length < limit) slots.unshift(start);
  const last = queued - 1;
  return Math.max(start, slots[last % limit]!) + Math.floor(last / limit) * windowMs - now;
}
