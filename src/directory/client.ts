import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import got, { RequestError, TimeoutError, type Method } from 'got';
import pRetry, { AbortError } from 'p-retry';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { RateLimiter } from './limiter.js';

/** A hospital as the directory returns it. */
export interface Hospital {
  id: number;
  name: string;
  address: string;
  phone: string | null;
  creation_batch_id: string | null;
  active: boolean;
  created_at: string;
}

export interface NewHospital {
  name: string;
  address: string;
  phone: string | null;
}

/** Who a directory call is for, so every log line about it names the batch and row. */
export interface CallContext {
  batchId?: string;
  row?: number;
}

export type CreateOutcome =
  | { kind: 'created'; hospital: Hospital; attempts: number; adopted: boolean }
  /** The directory refused the row (400/404/409/422): sending it again will not help. */
  | { kind: 'rejected'; status: number; message: string; attempts: number }
  /** Gave up. `not_created`: confirmed absent upstream. `unknown`: it may exist; reconcile before re-sending. */
  | { kind: 'failed'; outcome: 'not_created' | 'unknown'; message: string; attempts: number };

export type DirectoryErrorKind = 'unavailable' | 'activation_failed' | 'request_failed';

export class DirectoryError extends Error {
  override readonly name = 'DirectoryError';
  constructor(
    readonly kind: DirectoryErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * What one request came to. `not_sent`: the directory cannot have acted on it (refused
 * connection, connect timeout, 429), so it is safe to send again. `unknown`: it may have
 * acted (the request was written, then a read timeout, a reset, a 5xx or an unreadable 2xx).
 */
type Answer =
  | { outcome: 'ok'; status: number; body: unknown }
  | { outcome: 'rejected'; status: number; message: string }
  | { outcome: 'not_sent' | 'unknown'; status: number | null; message: string; retryAfterMs?: number };

/** Thrown inside a p-retry attempt to ask for another one. */
class RetryableAnswer extends Error {
  constructor(readonly answer: Answer & { outcome: 'not_sent' | 'unknown' }) {
    super(answer.message);
  }
}

type ClientConfig = Pick<
  Config,
  | 'HOSPITAL_API_BASE_URL'
  | 'UPSTREAM_TIMEOUT_MS'
  | 'UPSTREAM_MAX_ATTEMPTS'
  | 'UPSTREAM_RETRY_BASE_MS'
  | 'UPSTREAM_RETRY_MAX_MS'
  | 'UPSTREAM_SETTLE_MS'
  | 'WARMUP_TIMEOUT_MS'
  | 'UPSTREAM_CREATE_RATE_PER_MIN'
  | 'UPSTREAM_RATE_WINDOW_MS'
>;

// The directory's own limits per path (CONTRACT.md); creates are configurable downwards
// for when several of our processes share one outbound IP.
const HEALTH_RATE_PER_MIN = 100;
const OTHER_RATE_PER_MIN = 50;
/** 429s wait for the window instead of consuming attempts, but not forever. */
const MAX_RATE_LIMIT_WAITS = 10;
const CONNECT_TIMEOUT_MS = 10_000;
const IDLE_SOCKET_TIMEOUT_MS = 4_000;
const NEVER_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

export type DirectoryClient = ReturnType<typeof createDirectoryClient>;

/** The only code that talks to the Hospital Directory: pacing, timeouts, retries and reconciliation. */
export function createDirectoryClient(config: ClientConfig, logger: Logger) {
  const limiter = new RateLimiter(config.UPSTREAM_RATE_WINDOW_MS);
  // An idle kept-alive socket must be dropped before the server drops it: a create sent on
  // a socket the server is closing comes back as a reset, costs a settle delay and a
  // reconcile. Node lowers this further to a server's Keep-Alive hint, but only when a
  // timeout is set at all (4 s is under the usual 5 s of uvicorn and Node servers).
  const agentOptions = { keepAlive: true, timeout: IDLE_SOCKET_TIMEOUT_MS };
  const agents = { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };
  const api = got.extend({
    prefixUrl: config.HOSPITAL_API_BASE_URL,
    // p-retry owns every retry; got would otherwise re-send on its own.
    retry: { limit: 0 },
    throwHttpErrors: false,
    followRedirect: false,
    responseType: 'text',
    agent: agents,
    headers: { 'user-agent': 'hospital-bulk' },
  });
  const retryDelays = {
    factor: 2,
    minTimeout: config.UPSTREAM_RETRY_BASE_MS,
    maxTimeout: config.UPSTREAM_RETRY_MAX_MS,
    randomize: true,
  };

  /** Sends one request, paced by the limiter, and says what it came to; never throws. */
  async function send(
    op: string,
    request: { method: Method; path: string; json?: unknown; ratePerMin: number; timeoutMs?: number },
    context: CallContext & { attempt: number },
  ): Promise<Answer> {
    const limiterKey = `${request.ratePerMin}:${request.path}`;
    const release = await limiter.acquire(limiterKey, request.ratePerMin);
    const timeoutMs = request.timeoutMs ?? config.UPSTREAM_TIMEOUT_MS;
    const started = performance.now();
    let answer: Answer;
    try {
      const response = await api(request.path.replace(/^\//, ''), {
        method: request.method,
        json: request.json,
        timeout: { connect: Math.min(CONNECT_TIMEOUT_MS, timeoutMs), request: timeoutMs },
      });
      answer = classifyResponse(response.statusCode, response.body, response.headers['retry-after']);
    } catch (error) {
      answer = classifyTransportError(error);
    } finally {
      release();
    }
    if (answer.outcome === 'not_sent' && answer.status === 429) {
      const waitMs = answer.retryAfterMs ?? config.UPSTREAM_RATE_WINDOW_MS;
      limiter.block(limiterKey, Date.now() + waitMs);
    }
    logger.log(answer.outcome === 'ok' ? 'info' : 'warn', 'directory request', {
      op,
      batch_id: context.batchId,
      row: context.row,
      attempt: context.attempt,
      outcome: answer.outcome,
      status: answer.status,
      latency_ms: Math.round(performance.now() - started),
      ...(answer.outcome === 'ok' ? {} : { error: answer.message }),
    });
    return answer;
  }

  /**
   * Runs `attempt` under p-retry, up to `retries` retries of retryable answers. A 429 is not
   * a failed attempt: it waits for the window (the limiter is blocked) and costs no retry.
   */
  async function withRetries<T>(
    attempt: (attemptNumber: number) => Promise<T>,
    options: { retries: number; maxRetryTime?: number },
  ): Promise<T> {
    let retriesUsed = 0;
    let rateLimitWaits = 0;
    const rateLimited = (error: Error) => error instanceof RetryableAnswer && error.answer.status === 429;
    return pRetry(attempt, {
      ...retryDelays,
      // The budget is kept below, in shouldRetry: p-retry's own count would stop at 429s too.
      retries: Number.POSITIVE_INFINITY,
      maxRetryTime: options.maxRetryTime,
      shouldConsumeRetry: ({ error }) => !rateLimited(error),
      shouldRetry: ({ error }) =>
        rateLimited(error) ? ++rateLimitWaits <= MAX_RATE_LIMIT_WAITS : ++retriesUsed <= options.retries,
    });
  }

  async function getBatchOnce(batchId: string, context: CallContext, attempt: number): Promise<Hospital[]> {
    const answer = await send(
      'get_batch',
      { method: 'GET', path: `/hospitals/batch/${batchId}`, ratePerMin: OTHER_RATE_PER_MIN },
      { ...context, attempt },
    );
    if (answer.outcome === 'ok' && Array.isArray(answer.body)) return answer.body as Hospital[];
    if (answer.outcome === 'rejected' && answer.status === 404) return [];
    if (answer.outcome === 'rejected') {
      throw new AbortError(new DirectoryError('request_failed', `Reading the batch failed: ${answer.message}`));
    }
    throw new RetryableAnswer(answer.outcome === 'ok' ? unreadable(answer.status) : answer);
  }

  /** The batch's hospitals as the directory holds them now ([] when it holds none). */
  async function getBatch(batchId: string, context: CallContext = { batchId }): Promise<Hospital[]> {
    try {
      return await withRetries((n) => getBatchOnce(batchId, context, n), { retries: config.UPSTREAM_MAX_ATTEMPTS - 1 });
    } catch (error) {
      throw asDirectoryError(error, 'Could not read the batch from the directory');
    }
  }

  return {
    /** How long `count` more creates would wait for the rate limiter, behind everything queued now. */
    estimatedCreateWaitMs(count: number): number {
      return limiter.estimatedWaitMs(`${config.UPSTREAM_CREATE_RATE_PER_MIN}:/hospitals/`, config.UPSTREAM_CREATE_RATE_PER_MIN, count);
    },

    /** Wakes a sleeping directory with GET /, allowing a cold start of up to WARMUP_TIMEOUT_MS. */
    async wake(context: CallContext = {}): Promise<void> {
      const deadline = Date.now() + config.WARMUP_TIMEOUT_MS;
      let last = 'no answer';
      try {
        await withRetries(
          async (attempt) => {
            const remaining = deadline - Date.now();
            if (remaining <= 0) throw new AbortError(last);
            const answer = await send(
              'wake',
              { method: 'GET', path: '/', ratePerMin: HEALTH_RATE_PER_MIN, timeoutMs: Math.min(config.UPSTREAM_TIMEOUT_MS, remaining) },
              { ...context, attempt },
            );
            if (answer.outcome === 'ok') return;
            last = answer.status ? `HTTP ${answer.status}: ${answer.message}` : answer.message;
            // A 404 on GET / is a wrong HOSPITAL_API_BASE_URL, not a sleeping directory.
            if (answer.outcome === 'rejected') throw new AbortError(last);
            throw new RetryableAnswer(answer);
          },
          { retries: Number.POSITIVE_INFINITY, maxRetryTime: config.WARMUP_TIMEOUT_MS },
        );
      } catch (error) {
        throw new DirectoryError(
          'unavailable',
          `The Hospital Directory at ${config.HOSPITAL_API_BASE_URL} did not answer within ${Math.round(config.WARMUP_TIMEOUT_MS / 1000)} s (last: ${last}).`,
          { cause: error },
        );
      }
    },

    /**
     * Creates one hospital in a batch, never twice: a create whose answer was lost is settled
     * by reading the batch and adopting a matching hospital that no other row has `claimed`.
     * The id it ends with is added to `claimed` in the same tick the choice is made, so rows
     * running side by side can never both take one hospital.
     */
    async createHospital(
      hospital: NewHospital,
      context: CallContext & { batchId: string; claimed: Set<number> },
    ): Promise<CreateOutcome> {
      let attempts = 0;
      let maybeCreated = false;
      const adopt = async (): Promise<CreateOutcome | null> => {
        await sleep(config.UPSTREAM_SETTLE_MS);
        const found = findUnclaimed(await getBatch(context.batchId, context), hospital, context.claimed);
        if (!found) return null;
        context.claimed.add(found.id);
        logger.info('adopted hospital created by an earlier attempt', { batch_id: context.batchId, row: context.row, hospital_id: found.id });
        return { kind: 'created', hospital: found, attempts, adopted: true };
      };
      try {
        return await withRetries(
          async () => {
            if (maybeCreated) {
              const adopted = await adopt();
              if (adopted) return adopted;
              maybeCreated = false;
            }
            attempts += 1;
            const answer = await send(
              'create',
              {
                method: 'POST',
                path: '/hospitals/',
                json: { ...hospital, creation_batch_id: context.batchId },
                ratePerMin: config.UPSTREAM_CREATE_RATE_PER_MIN,
              },
              { ...context, attempt: attempts },
            );
            if (answer.outcome === 'ok' && isHospital(answer.body)) {
              context.claimed.add(answer.body.id);
              return { kind: 'created', hospital: answer.body, attempts, adopted: false } as const;
            }
            if (answer.outcome === 'rejected') {
              throw new AbortError(new RejectedError(answer.status, answer.message));
            }
            const retryable = answer.outcome === 'ok' ? unreadable(answer.status) : answer;
            maybeCreated = retryable.outcome === 'unknown';
            throw new RetryableAnswer(retryable);
          },
          { retries: config.UPSTREAM_MAX_ATTEMPTS - 1 },
        );
      } catch (error) {
        if (error instanceof RejectedError) {
          return { kind: 'rejected', status: error.status, message: error.message, attempts };
        }
        const message = error instanceof Error ? error.message : String(error);
        if (!maybeCreated) return { kind: 'failed', outcome: 'not_created', message, attempts };
        // Out of attempts with the last one unanswered: look once more before calling it failed.
        try {
          return (await adopt()) ?? { kind: 'failed', outcome: 'not_created', message, attempts };
        } catch {
          return { kind: 'failed', outcome: 'unknown', message, attempts };
        }
      }
    },

    /**
     * Activates a batch once every hospital in `expectedIds` is confirmed upstream. Activation
     * is not idempotent: a 400 "already active" or a lost answer is settled by reading the
     * batch (all active → done).
     */
    async activateBatch(batchId: string, expectedIds: number[], context: CallContext = { batchId }): Promise<{ activatedCount: number }> {
      const fail = (message: string) => new AbortError(new DirectoryError('activation_failed', message));
      /** Reads the batch: done if all active, null if all inactive and complete, else a reason to stop. */
      const check = async (): Promise<{ activatedCount: number } | null> => {
        const hospitals = await getBatch(batchId, context);
        const present = new Set(hospitals.map((h) => h.id));
        const missing = expectedIds.filter((id) => !present.has(id));
        if (hospitals.length === 0 || missing.length > 0) {
          throw fail(
            `${missing.length || expectedIds.length} of ${expectedIds.length} hospital(s) of this batch are not in the directory ` +
              `(it may have restarted and forgotten them); the batch was not activated. Resume it to create them again.`,
          );
        }
        const active = hospitals.filter((h) => h.active).length;
        if (active === hospitals.length) return { activatedCount: active };
        if (active > 0) throw fail(`The directory shows ${active} of ${hospitals.length} hospital(s) of this batch active; expected none or all.`);
        return null;
      };
      let needsCheck = true;
      try {
        return await withRetries(
          async (attempt) => {
            if (needsCheck) {
              const done = await check();
              if (done) return done;
              needsCheck = false;
            }
            const answer = await send(
              'activate',
              { method: 'PATCH', path: `/hospitals/batch/${batchId}/activate`, ratePerMin: OTHER_RATE_PER_MIN },
              { ...context, attempt },
            );
            const count = answer.outcome === 'ok' ? (answer.body as { activated_count?: unknown } | undefined)?.activated_count : null;
            if (typeof count === 'number') return { activatedCount: count };
            if (answer.outcome === 'rejected') {
              // 400 "already active" may be our own earlier attempt whose answer we never saw.
              const done = answer.status === 400 ? await check() : null;
              if (done) return done;
              throw fail(`The directory refused activation: ${answer.message}`);
            }
            const retryable = answer.outcome === 'ok' ? unreadable(answer.status) : answer;
            needsCheck = retryable.outcome === 'unknown';
            throw new RetryableAnswer(retryable);
          },
          { retries: config.UPSTREAM_MAX_ATTEMPTS - 1 },
        );
      } catch (error) {
        if (needsCheck && !(error instanceof DirectoryError)) {
          const done = await check().catch(() => null);
          if (done) return done;
        }
        throw asDirectoryError(error, 'Activation failed', 'activation_failed');
      }
    },

    getBatch,

    /** Every hospital the directory holds, in one GET /hospitals/ with a single attempt of at most `timeoutMs`. */
    async listHospitals(timeoutMs: number): Promise<Hospital[]> {
      const answer = await send(
        'list',
        { method: 'GET', path: '/hospitals/', ratePerMin: OTHER_RATE_PER_MIN, timeoutMs: Math.min(timeoutMs, config.UPSTREAM_TIMEOUT_MS) },
        { attempt: 1 },
      );
      if (answer.outcome === 'ok' && Array.isArray(answer.body)) return answer.body as Hospital[];
      const why = answer.outcome === 'ok' ? `HTTP ${answer.status} with an unexpected body` : answer.message;
      throw new DirectoryError('request_failed', `Listing hospitals failed: ${why}`);
    },

    /** Deletes every hospital of the batch upstream; returns how many went (0 when none were there). */
    async deleteBatch(batchId: string, context: CallContext = { batchId }): Promise<number> {
      try {
        return await withRetries(
          async (attempt) => {
            const answer = await send(
              'delete_batch',
              { method: 'DELETE', path: `/hospitals/batch/${batchId}`, ratePerMin: OTHER_RATE_PER_MIN },
              { ...context, attempt },
            );
            const count = answer.outcome === 'ok' ? (answer.body as { deleted_count?: unknown } | undefined)?.deleted_count : null;
            if (typeof count === 'number') return count;
            if (answer.outcome === 'rejected' && answer.status === 404) return 0;
            if (answer.outcome === 'rejected') {
              throw new AbortError(new DirectoryError('request_failed', `The directory refused the delete: ${answer.message}`));
            }
            throw new RetryableAnswer(answer.outcome === 'ok' ? unreadable(answer.status) : answer);
          },
          { retries: config.UPSTREAM_MAX_ATTEMPTS - 1 },
        );
      } catch (error) {
        throw asDirectoryError(error, 'Deleting the batch failed');
      }
    },

    /** Closes kept-alive connections so the process (or a test) can exit. */
    close(): void {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

class RejectedError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function classifyResponse(status: number, text: string, retryAfter: string | undefined): Answer {
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (status >= 200 && status < 300) return { outcome: 'ok', status, body };
  const message = detailOf(body) ?? `HTTP ${status}`;
  if (status === 429) return { outcome: 'not_sent', status, message, retryAfterMs: parseRetryAfter(retryAfter) };
  // 408 and 5xx: the directory (or its proxy) may have acted before failing.
  if (status >= 500 || status === 408) return { outcome: 'unknown', status, message };
  return { outcome: 'rejected', status, message };
}

function classifyTransportError(error: unknown): Answer {
  const code = error instanceof RequestError ? error.code : undefined;
  const message = error instanceof Error ? error.message : String(error);
  if (code && NEVER_SENT_CODES.has(code)) return { outcome: 'not_sent', status: null, message };
  if (error instanceof TimeoutError && ['lookup', 'connect', 'secureConnect'].includes(error.event)) {
    return { outcome: 'not_sent', status: null, message };
  }
  // Once the request is fully written the directory may act on it, whatever happens next.
  const written = error instanceof RequestError && error.timings?.upload !== undefined;
  return { outcome: written ? 'unknown' : 'not_sent', status: null, message };
}

function unreadable(status: number): Answer & { outcome: 'unknown' } {
  return { outcome: 'unknown', status, message: `HTTP ${status} with a body that is not what the directory sends` };
}

/** The directory's own words: `detail` (a string, or FastAPI's list of `{loc, msg}`), or a 429's `error`. */
function detailOf(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { detail, error } = body as { detail?: unknown; error?: unknown };
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item: { loc?: unknown; msg?: unknown }) => {
        const field = Array.isArray(item?.loc) ? item.loc.filter((part) => part !== 'body').join('.') : '';
        return field ? `${field}: ${String(item?.msg)}` : String(item?.msg);
      })
      .join('; ');
  }
  if (typeof error === 'string') return error;
  return undefined;
}

function parseRetryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function isHospital(body: unknown): body is Hospital {
  const h = body as Hospital | undefined;
  return typeof h?.id === 'number' && typeof h.name === 'string' && typeof h.address === 'string';
}

/** Multiset matching: the lowest-id hospital with the same values that no other row owns. */
export function findUnclaimed(hospitals: Hospital[], wanted: NewHospital, claimed: ReadonlySet<number>): Hospital | undefined {
  return hospitals
    .filter(
      (h) =>
        !claimed.has(h.id) && h.name === wanted.name && h.address === wanted.address && (h.phone ?? null) === (wanted.phone ?? null),
    )
    .sort((a, b) => a.id - b.id)[0];
}

function asDirectoryError(error: unknown, what: string, kind: DirectoryErrorKind = 'request_failed'): DirectoryError {
  if (error instanceof DirectoryError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new DirectoryError(kind, `${what}: ${message}`, { cause: error });
}
