import { AbortError } from 'p-retry';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { settleLostCreates, type LostCreate } from './settle.js';
import { isUnresolvedHost, RetryableAnswer, withRetries, type RetryOptions } from './retry.js';
import { createTransport, unreadable, type Answer, type DirectoryRequest, type TransportOptions } from './transport.js';
import {
  DirectoryError,
  type CallContext,
  type CreateOutcome,
  type DirectoryErrorKind,
  type DirectoryOp,
  type DirectoryWait,
  type Hospital,
  type NewHospital,
} from './types.js';

export { findUnclaimed, matchRows } from './reconcile.js';
export type { LostCreate, Settlement } from './settle.js';
export { DirectoryError } from './types.js';
export type { CallContext, CreateOutcome, DirectoryErrorKind, DirectoryObserver, DirectoryOp, DirectoryWait, Hospital, NewHospital } from './types.js';

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

export type DirectoryClient = ReturnType<typeof createDirectoryClient>;

/**
 * The only code that talks to the Hospital Directory: each operation, over the transport and
 * the retry policy. `options.limiter` paces it (default: in this process only);
 * `options.observer` hears of every request.
 */
export function createDirectoryClient(config: ClientConfig, logger: Logger, options: TransportOptions = {}) {
  const transport = createTransport(config, logger, options);
  const backoff = { baseMs: config.UPSTREAM_RETRY_BASE_MS, maxMs: config.UPSTREAM_RETRY_MAX_MS };
  const createRequest = { path: '/hospitals/', ratePerMin: config.UPSTREAM_CREATE_RATE_PER_MIN };

  /** Runs one operation's attempts under the policy, with the caller's (hooked) onWait. */
  const retry = <T>(op: DirectoryOp, context: CallContext, attempt: (n: number) => Promise<T>, options: Partial<RetryOptions> = {}) =>
    withRetries(attempt, { op, retries: config.UPSTREAM_MAX_ATTEMPTS - 1, backoff, onWait: context.onWait, ...options });

  /** The caller's onWait, logged, and shielded: a listener that throws must not fail the call it watches. */
  function hooked<C extends CallContext>(context: C): C {
    const listener = context.onWait;
    return {
      ...context,
      onWait: (wait: DirectoryWait) => {
        const { op, reason, attempt, status, delayMs } = wait;
        logger.info('directory wait', { batch_id: context.batchId, row: context.row, op, reason, attempt, status, delay_ms: delayMs });
        try {
          listener?.(wait);
        } catch (error) {
          logger.warn('directory wait listener failed', { batch_id: context.batchId, row: context.row, error: messageOf(error) });
        }
      },
    };
  }

  /** Why a call gave up, in words a user can act on. */
  const failureMessage = (error: unknown) =>
    isUnresolvedHost(error)
      ? `The host name in HOSPITAL_API_BASE_URL (${config.HOSPITAL_API_BASE_URL}) does not resolve (${error.message}). ` +
        `Check the variable for a typo, and this machine's DNS and network connection.`
      : messageOf(error);

  const asDirectoryError = (error: unknown, what: string, kind: DirectoryErrorKind = 'request_failed') =>
    error instanceof DirectoryError ? error : new DirectoryError(kind, `${what}: ${failureMessage(error)}`, { cause: error });

  /** The batch's hospitals as the directory holds them now ([] when it holds none); `context` already hooked. */
  async function readBatch(batchId: string, context: CallContext): Promise<Hospital[]> {
    try {
      return await retry('get_batch', context, async (attempt) => {
        const request: DirectoryRequest = { method: 'GET', path: `/hospitals/batch/${batchId}`, ratePerMin: OTHER_RATE_PER_MIN };
        const answer = await transport.send('get_batch', request, { ...context, attempt });
        if (answer.outcome === 'ok' && Array.isArray(answer.body)) return answer.body as Hospital[];
        if (answer.outcome === 'rejected' && answer.status === 404) return [];
        if (answer.outcome === 'rejected') {
          throw new AbortError(new DirectoryError('request_failed', `Reading the batch failed: ${answer.message}`));
        }
        throw new RetryableAnswer(answer.outcome === 'ok' ? unreadable(answer.status) : answer);
      });
    } catch (error) {
      throw asDirectoryError(error, 'Could not read the batch from the directory');
    }
  }

  /** Wakes a sleeping directory with GET /, allowing a cold start of up to WARMUP_TIMEOUT_MS. */
  async function wake(callContext: CallContext = {}): Promise<void> {
    const context = hooked(callContext);
    const deadline = Date.now() + config.WARMUP_TIMEOUT_MS;
    let last = 'no answer';
    try {
      await retry(
        'wake',
        context,
        async (attempt) => {
          const remaining = deadline - Date.now();
          if (remaining <= 0) throw new AbortError(last);
          const timeoutMs = Math.min(config.UPSTREAM_TIMEOUT_MS, remaining);
          const request: DirectoryRequest = { method: 'GET', path: '/', ratePerMin: HEALTH_RATE_PER_MIN, timeoutMs };
          const answer = await transport.send('wake', request, { ...context, attempt });
          if (answer.outcome === 'ok') return;
          last = answer.status ? `HTTP ${answer.status}: ${answer.message}` : answer.message;
          // A 404 on GET / is a wrong HOSPITAL_API_BASE_URL, not a sleeping directory.
          if (answer.outcome === 'rejected') throw new AbortError(last);
          throw new RetryableAnswer(answer);
        },
        { retries: Number.POSITIVE_INFINITY, maxRetryTime: config.WARMUP_TIMEOUT_MS },
      );
    } catch (error) {
      // Waiting cannot make a host name resolve: say so now, not after WARMUP_TIMEOUT_MS.
      if (isUnresolvedHost(error)) throw new DirectoryError('unavailable', failureMessage(error), { cause: error });
      throw new DirectoryError(
        'unavailable',
        `The Hospital Directory at ${config.HOSPITAL_API_BASE_URL} did not answer within ${Math.round(config.WARMUP_TIMEOUT_MS / 1000)} s (last: ${last}).`,
        { cause: error },
      );
    }
  }

  /**
   * Sends one hospital's create, retrying what the directory cannot have acted on (refused
   * connections, 429s). A create whose answer was lost is NOT settled here: it comes back
   * as `lost` at once, so the batch goes on, and the caller settles it later with
   * `settleCreates` (one read for every lost row) before re-sending. `maxAttempts` is what
   * is left of the row's budget. A created id is added to `claimed` in the tick it arrives.
   * `ready`: the first attempt goes out only once it resolves true (the pacing slot is
   * taken meanwhile); false: nothing is sent and the outcome is `withheld`.
   */
  async function createHospital(
    hospital: NewHospital,
    callContext: CallContext & { batchId: string; directoryBatchId?: string; claimed: Set<number>; maxAttempts?: number; ready?: Promise<boolean> },
  ): Promise<CreateOutcome> {
    const context = hooked(callContext);
    let attempts = 0;
    try {
      return await retry(
        'create',
        context,
        async () => {
          attempts += 1;
          const request = { ...createRequest, method: 'POST' as const, json: { ...hospital, creation_batch_id: context.directoryBatchId ?? context.batchId } };
          const sent = { ...context, attempt: attempts };
          const answer = attempts === 1 && callContext.ready ? await transport.sendWhenReady(callContext.ready, 'create', request, sent) : await transport.send('create', request, sent);
          if (answer.outcome === 'withheld') return { kind: 'withheld' } as const;
          if (answer.outcome === 'ok' && isHospital(answer.body)) {
            context.claimed.add(answer.body.id);
            return { kind: 'created', hospital: answer.body, attempts, adopted: false } as const;
          }
          if (answer.outcome === 'rejected') throw new AbortError(new RejectedError(answer.status, answer.message));
          const retryable = answer.outcome === 'ok' ? unreadable(answer.status) : answer;
          if (retryable.outcome === 'unknown') return { kind: 'lost', message: retryable.message, status: retryable.status, attempts, lostAt: Date.now() } as const;
          throw new RetryableAnswer(retryable);
        },
        { retries: Math.max(1, callContext.maxAttempts ?? config.UPSTREAM_MAX_ATTEMPTS) - 1 },
      );
    } catch (error) {
      if (error instanceof RejectedError) return { kind: 'rejected', status: error.status, message: error.message, attempts };
      return { kind: 'failed', outcome: 'not_created', message: failureMessage(error), attempts };
    }
  }

  /** Settles creates whose answers were lost: see src/directory/settle.ts. */
  function settleCreates<R extends LostCreate>(batchId: string, lost: readonly R[], claimed: Set<number>, callContext: CallContext = { batchId }) {
    const context = hooked(callContext);
    return settleLostCreates(() => readBatch(batchId, context), lost, claimed, { settleMs: config.UPSTREAM_SETTLE_MS });
  }

  /**
   * Activates a batch once every hospital in `expectedIds` is confirmed upstream. Activation
   * is not idempotent: a 400 "already active" or a lost answer is settled by reading the
   * batch (all active → done). `confirmed`: the caller saw every id in a create answer of
   * this run, so the read before the PATCH is skipped; the count the PATCH answers is then
   * checked instead (a directory that restarted mid-batch activates fewer).
   */
  async function activateBatch(
    batchId: string,
    expectedIds: number[],
    callContext: CallContext = { batchId },
    { confirmed = false }: { confirmed?: boolean } = {},
  ): Promise<{ activatedCount: number }> {
    const context = hooked(callContext);
    const fail = (message: string) => new AbortError(new DirectoryError('activation_failed', message));
    /** Reads the batch: done if all active, null if all inactive and complete, else a reason to stop. */
    const check = async (): Promise<{ activatedCount: number } | null> => {
      const hospitals = await readBatch(batchId, context);
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
    let needsCheck = !confirmed;
    try {
      return await retry('activate', context, async (attempt) => {
        if (needsCheck) {
          const done = await check();
          if (done) return done;
          needsCheck = false;
        }
        const request: DirectoryRequest = { method: 'PATCH', path: `/hospitals/batch/${batchId}/activate`, ratePerMin: OTHER_RATE_PER_MIN };
        const answer = await transport.send('activate', request, { ...context, attempt });
        const count = countIn(answer, 'activated_count');
        if (count !== undefined && confirmed && count !== expectedIds.length) {
          throw fail(
            `The directory activated ${count} hospital(s) of this batch where ${expectedIds.length} were created ` +
              `(it may have restarted during the upload and forgotten some).`,
          );
        }
        if (count !== undefined) return { activatedCount: count };
        if (answer.outcome === 'rejected') {
          // 400 "already active" may be our own earlier attempt whose answer we never saw.
          const done = answer.status === 400 ? await check() : null;
          if (done) return done;
          throw fail(`The directory refused activation: ${answer.message}`);
        }
        const retryable = answer.outcome === 'ok' ? unreadable(answer.status) : answer;
        needsCheck = retryable.outcome === 'unknown';
        throw new RetryableAnswer(retryable);
      });
    } catch (error) {
      if (needsCheck && !(error instanceof DirectoryError)) {
        const done = await check().catch(() => null);
        if (done) return done;
      }
      throw asDirectoryError(error, 'Activation failed', 'activation_failed');
    }
  }

  /** Deletes every hospital of the batch upstream; returns how many went (0 when none were there). */
  async function deleteBatch(batchId: string, callContext: CallContext = { batchId }): Promise<number> {
    const context = hooked(callContext);
    try {
      return await retry('delete_batch', context, async (attempt) => {
        const request: DirectoryRequest = { method: 'DELETE', path: `/hospitals/batch/${batchId}`, ratePerMin: OTHER_RATE_PER_MIN };
        const answer = await transport.send('delete_batch', request, { ...context, attempt });
        const count = countIn(answer, 'deleted_count');
        if (count !== undefined) return count;
        if (answer.outcome === 'rejected' && answer.status === 404) return 0;
        if (answer.outcome === 'rejected') {
          throw new AbortError(new DirectoryError('request_failed', `The directory refused the delete: ${answer.message}`));
        }
        throw new RetryableAnswer(answer.outcome === 'ok' ? unreadable(answer.status) : answer);
      });
    } catch (error) {
      throw asDirectoryError(error, 'Deleting the batch failed');
    }
  }

  return {
    /** How long `count` more creates would wait for the rate limiter, behind everything queued now. */
    estimatedCreateWaitMs: (count: number): number => transport.estimatedWaitMs(createRequest, count),
    wake,
    createHospital,
    settleCreates,
    activateBatch,
    /** The batch's hospitals as the directory holds them now ([] when it holds none). */
    getBatch: (batchId: string, context: CallContext = { batchId }): Promise<Hospital[]> => readBatch(batchId, hooked(context)),

    /** Every hospital the directory holds, in one GET /hospitals/ with a single attempt of at most `timeoutMs`. */
    async listHospitals(timeoutMs: number): Promise<Hospital[]> {
      const limit = Math.min(timeoutMs, config.UPSTREAM_TIMEOUT_MS);
      const request: DirectoryRequest = { method: 'GET', path: '/hospitals/', ratePerMin: OTHER_RATE_PER_MIN, timeoutMs: limit };
      const answer = await transport.send('list', request, { attempt: 1 });
      if (answer.outcome === 'ok' && Array.isArray(answer.body)) return answer.body as Hospital[];
      const why = answer.outcome === 'ok' ? `HTTP ${answer.status} with an unexpected body` : answer.message;
      throw new DirectoryError('request_failed', `Listing hospitals failed: ${why}`);
    },

    deleteBatch,
    /** Closes kept-alive connections so the process (or a test) can exit. */
    close: (): void => transport.close(),
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

function isHospital(body: unknown): body is Hospital {
  const h = body as Hospital | undefined;
  return typeof h?.id === 'number' && typeof h.name === 'string' && typeof h.address === 'string';
}

/** The count a 200 from activate or delete carries, when it carries one. */
function countIn(answer: Answer, field: 'activated_count' | 'deleted_count'): number | undefined {
  const count = answer.outcome === 'ok' ? (answer.body as Record<string, unknown> | undefined)?.[field] : undefined;
  return typeof count === 'number' ? count : undefined;
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
