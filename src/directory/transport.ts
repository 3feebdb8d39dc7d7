import http from 'node:http';
import https from 'node:https';
import got, { RequestError, TimeoutError, type Method } from 'got';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { RateLimiter, type DirectoryLimiter } from './limiter.js';
import type { CallContext, DirectoryObserver, DirectoryOp } from './types.js';

/**
 * What one request came to. `not_sent`: the directory cannot have acted on it (refused
 * connection, connect timeout, 429), so it is safe to send again. `unknown`: it may have
 * acted (the request was written, then a read timeout, a reset, a 5xx or an unreadable 2xx).
 * `code` is the transport's error code (ECONNREFUSED, ENOTFOUND, …) when there was no answer.
 */
export type Answer =
  | { outcome: 'ok'; status: number; body: unknown }
  | { outcome: 'rejected'; status: number; message: string }
  | { outcome: 'not_sent' | 'unknown'; status: number | null; message: string; code?: string; retryAfterMs?: number };

/** Not sent: the caller said it was not ready after all (see Transport.sendWhenReady). */
export const WITHHELD = { outcome: 'withheld' } as const;
export type Withheld = typeof WITHHELD;

/** An answer worth another attempt. */
export type RetryableOutcome = Extract<Answer, { outcome: 'not_sent' | 'unknown' }>;

/** One request: where, how fast it may be sent (the directory's limit for its path), and how long to give it. */
export interface DirectoryRequest {
  method: Method;
  path: string;
  json?: unknown;
  ratePerMin: number;
  timeoutMs?: number;
}

export type TransportConfig = Pick<Config, 'HOSPITAL_API_BASE_URL' | 'UPSTREAM_TIMEOUT_MS' | 'UPSTREAM_RATE_WINDOW_MS'>;

export type Transport = ReturnType<typeof createTransport>;

const CONNECT_TIMEOUT_MS = 10_000;
const IDLE_SOCKET_TIMEOUT_MS = 4_000;
const NEVER_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_FAIL', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** What the wire is given beside its config: both optional. */
export interface TransportOptions {
  /** Paces the requests; default: in this process only. Pass the one all instances share. */
  limiter?: DirectoryLimiter;
  /** Told about every request sent (metrics, readiness). */
  observer?: DirectoryObserver;
}

/**
 * The wire to the directory: one got instance, pacing by `limiter` (in this process unless
 * the caller passes the one all instances share), and a classified answer for every request.
 */
export function createTransport(config: TransportConfig, logger: Logger, options: TransportOptions = {}) {
  const { limiter = new RateLimiter(config.UPSTREAM_RATE_WINDOW_MS), observer } = options;
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
    agent: agents,
    headers: { 'user-agent': 'hospital-bulk' },
  });
  const timeouts = (timeoutMs: number) => ({ connect: Math.min(CONNECT_TIMEOUT_MS, timeoutMs), request: timeoutMs });
  // The usual timeout set once: got merges a per-call `timeout` into its options on every
  // request, which made each request cost half as much again (0.42 against 0.27 ms measured).
  const usual = api.extend({ timeout: timeouts(config.UPSTREAM_TIMEOUT_MS) });
  const limiterKey = (request: Pick<DirectoryRequest, 'path' | 'ratePerMin'>) => `${request.ratePerMin}:${request.path}`;

  /**
   * One request and its whole answer, through got's stream interface: the promise interface
   * does the same work and wraps it in a cancelable promise, proxied events and a body read
   * through an async iterator: 20 creates at once took ~6 ms longer that way (measured with
   * bench/floor-server.js and the service). Rejects with got's own errors, as the promise would.
   */
  function exchange(request: DirectoryRequest, timeoutMs: number): Promise<{ status: number; text: string; retryAfter: string | undefined }> {
    return new Promise((resolve, reject) => {
      const path = request.path.replace(/^\//, '');
      const options = { method: request.method, ...(request.json === undefined ? {} : { json: request.json }) };
      const stream = timeoutMs === config.UPSTREAM_TIMEOUT_MS ? usual.stream(path, options) : api.stream(path, { ...options, timeout: timeouts(timeoutMs) });
      let response: http.IncomingMessage | undefined;
      const chunks: Buffer[] = [];
      stream.on('response', (answered: http.IncomingMessage) => (response = answered));
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => resolve({ status: response!.statusCode!, text: Buffer.concat(chunks).toString('utf8'), retryAfter: response!.headers['retry-after'] }));
      stream.on('error', reject);
      // A stream waits for its body to be written: one without (PATCH …/activate, DELETE) is ended here.
      if (request.json === undefined && request.method !== 'GET' && request.method !== 'HEAD') stream.end();
    });
  }

  /**
   * Sends one request, paced by the limiter, and says what it came to; never throws.
   * `ready`: the request goes out only once it resolves true, and its slot is taken
   * meanwhile (the caller's wait and the limiter's overlap); false: the slot is given back
   * and nothing is sent (`withheld`).
   */
  async function pacedSend(op: DirectoryOp, request: DirectoryRequest, context: CallContext & { attempt: number }, ready?: Promise<boolean>): Promise<Answer | Withheld> {
    const key = limiterKey(request);
    const queued = performance.now();
    let release: () => void;
    try {
      release = await limiter.acquire(key, request.ratePerMin, ({ delayMs, blocked }) =>
        context.onWait?.({
          op,
          reason: 'rate_limited',
          attempt: context.attempt,
          status: blocked ? 429 : null,
          message: blocked
            ? `The directory refused us with 429 (rate limit); waiting for its window to pass.`
            : `Pacing under the directory's limit of ${request.ratePerMin} requests a minute for ${request.path}.`,
          delayMs,
        }),
      );
    } catch (error) {
      // The shared limiter's database did not answer: nothing was sent, so it may be tried again.
      const message = `Could not take a pacing slot: ${error instanceof Error ? error.message : String(error)}`;
      logger.warn('directory request', { op, batch_id: context.batchId, row: context.row, attempt: context.attempt, outcome: 'not_sent', error: message });
      return { outcome: 'not_sent', status: null, message };
    }
    if (ready && !(await ready)) {
      release();
      return WITHHELD;
    }
    const timeoutMs = request.timeoutMs ?? config.UPSTREAM_TIMEOUT_MS;
    const started = performance.now();
    let answer: Answer;
    try {
      const response = await exchange(request, timeoutMs);
      answer = classifyResponse(response.status, response.text, response.retryAfter);
    } catch (error) {
      answer = classifyTransportError(error);
    }
    // Block before releasing, so no other request (of any instance) takes a slot in between.
    if (answer.outcome === 'not_sent' && answer.status === 429) {
      await limiter.block(key, Date.now() + (answer.retryAfterMs ?? config.UPSTREAM_RATE_WINDOW_MS));
    }
    release();
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
    observer?.request({
      op,
      outcome: answer.outcome,
      status: answer.status,
      seconds: (performance.now() - started) / 1000,
      waitedSeconds: (started - queued) / 1000,
    });
    return answer;
  }

  return {
    /** Sends one request, paced by the limiter, and says what it came to; never throws. */
    send: (op: DirectoryOp, request: DirectoryRequest, context: CallContext & { attempt: number }) => pacedSend(op, request, context) as Promise<Answer>,

    /** `send`, once `ready` resolves true: see pacedSend. */
    sendWhenReady: (ready: Promise<boolean>, op: DirectoryOp, request: DirectoryRequest, context: CallContext & { attempt: number }) =>
      pacedSend(op, request, context, ready),

    /** How long `count` more requests like `request` would wait for the limiter, behind everything queued now. */
    estimatedWaitMs(request: Pick<DirectoryRequest, 'path' | 'ratePerMin'>, count: number): number {
      return limiter.estimatedWaitMs(limiterKey(request), request.ratePerMin, count);
    },

    /** Closes kept-alive connections so the process (or a test) can exit. */
    close(): void {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/** Sorts an HTTP answer into ok / rejected (will not change) / not_sent (429) / unknown (408, 5xx). */
export function classifyResponse(status: number, text: string, retryAfter: string | undefined): Answer {
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

/** Sorts a request that got no answer into not_sent (never reached the directory) or unknown (it may have acted). */
export function classifyTransportError(error: unknown): RetryableOutcome {
  const code = error instanceof RequestError ? error.code : undefined;
  const failure = { status: null, message: error instanceof Error ? error.message : String(error), ...(code ? { code } : {}) };
  if (code && NEVER_SENT_CODES.has(code)) return { outcome: 'not_sent', ...failure };
  if (error instanceof TimeoutError && ['lookup', 'connect', 'secureConnect'].includes(error.event)) {
    return { outcome: 'not_sent', ...failure };
  }
  // Once the request is fully written the directory may act on it, whatever happens next.
  const written = error instanceof RequestError && error.timings?.upload !== undefined;
  return { outcome: written ? 'unknown' : 'not_sent', ...failure };
}

/** A 2xx whose body is not what the directory sends: it may have acted, so treat it as unknown. */
export function unreadable(status: number): RetryableOutcome & { outcome: 'unknown' } {
  return { outcome: 'unknown', status, message: `HTTP ${status} with a body that is not what the directory sends` };
}

/** The directory's own words: `detail` (a string, or FastAPI's list of `{loc, msg}`), or a 429's `error`. */
export function detailOf(body: unknown): string | undefined {
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

/** A Retry-After header (seconds or an HTTP date) in milliseconds from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
