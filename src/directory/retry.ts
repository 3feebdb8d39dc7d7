import { setTimeout as sleep } from 'node:timers/promises';
import pRetry from 'p-retry';
import type { RetryableOutcome } from './transport.js';
import type { DirectoryOp, DirectoryWait } from './types.js';

/**
 * Thrown inside an attempt to ask for another one. `settleMs`: the next attempt must also
 * give the directory that long to finish a request that may still land (a create whose
 * answer was lost), so it is part of the wait.
 */
export class RetryableAnswer extends Error {
  constructor(
    readonly answer: RetryableOutcome,
    readonly settleMs = 0,
  ) {
    super(answer.message);
  }
}

/** Exponential backoff: the first retry waits 1–2 × `baseMs`, each next one twice as long, never over `maxMs`. */
export interface Backoff {
  baseMs: number;
  maxMs: number;
}

export interface RetryOptions {
  op: DirectoryOp;
  /** Retries after the first attempt; 429s do not count. */
  retries: number;
  /** Stop retrying once this long has passed since the first attempt. */
  maxRetryTime?: number;
  backoff: Backoff;
  onWait?: (wait: DirectoryWait) => void;
}

/** 429s wait for the window instead of consuming attempts, but not forever. */
const MAX_RATE_LIMIT_WAITS = 10;
/** Host names that do not resolve now will not resolve in a minute either (EAI_AGAIN, a DNS hiccup, might). */
const UNRESOLVED_HOST_CODES = new Set(['ENOTFOUND', 'EAI_FAIL']);

/** True when `error` is an attempt that failed because the directory's host name does not resolve. */
export function isUnresolvedHost(error: unknown): error is RetryableAnswer {
  return error instanceof RetryableAnswer && UNRESOLVED_HOST_CODES.has(error.answer.code ?? '');
}

const isRateLimited = (error: unknown): error is RetryableAnswer => error instanceof RetryableAnswer && error.answer.status === 429;

/** The wait before the retry that follows `retriesConsumed` earlier ones: p-retry's own formula (factor 2, randomized). */
export function backoffDelay(retriesConsumed: number, backoff: Backoff, random = Math.random()): number {
  return Math.min(Math.round((1 + random) * backoff.baseMs * 2 ** retriesConsumed), backoff.maxMs);
}

/**
 * Runs `attempt` until it succeeds, throws p-retry's AbortError, or the policy gives up: the
 * one place that decides what is retried and how long to wait. A 429 costs no retry: the
 * limiter is blocked for the window and holds the next send (and tells `onWait` itself).
 */
export async function withRetries<T>(attempt: (attemptNumber: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const started = performance.now();
  let retriesUsed = 0;
  let rateLimitWaits = 0;
  return pRetry(attempt, {
    // The budget is kept below, in shouldRetry: p-retry's own count would stop at 429s too.
    retries: Number.POSITIVE_INFINITY,
    maxRetryTime: options.maxRetryTime,
    // p-retry 7 does not say how long it is about to sleep (its context has only the error
    // and the counts), and a user must see that. So the backoff is computed and slept here,
    // in shouldRetry, which runs only when a retry will follow; p-retry's own delay is zero.
    minTimeout: 0,
    maxTimeout: 0,
    shouldConsumeRetry: ({ error }) => !isRateLimited(error),
    shouldRetry: async ({ error, attemptNumber, retriesConsumed }) => {
      if (isUnresolvedHost(error)) return false;
      if (isRateLimited(error)) return ++rateLimitWaits <= MAX_RATE_LIMIT_WAITS;
      if (++retriesUsed > options.retries) return false;
      const settleMs = error instanceof RetryableAnswer ? error.settleMs : 0;
      const remaining = (options.maxRetryTime ?? Number.POSITIVE_INFINITY) - (performance.now() - started);
      const delayMs = Math.max(0, Math.min(backoffDelay(retriesConsumed, options.backoff) + settleMs, remaining));
      options.onWait?.({
        op: options.op,
        reason: 'retry',
        attempt: attemptNumber,
        status: error instanceof RetryableAnswer ? error.answer.status : null,
        message: error.message,
        delayMs,
      });
      await sleep(delayMs);
      return true;
    },
  });
}
