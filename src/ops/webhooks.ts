import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config.js';
import type { OutboxEntry, Store } from '../db/store.js';
import { toSummary, type BatchSummary } from '../http/presenter.js';
import type { Logger } from '../logger.js';

/** The signature header, Stripe's scheme: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`. */
export const SIGNATURE_HEADER = 'Hospital-Bulk-Signature';

const DAY_MS = 24 * 60 * 60 * 1000;
const MAX_DELAY_MS = 60 * 60 * 1000;
const TIMEOUT_MS = 10_000;
/** Longer than one delivery can take, so a delivery is never sent twice at once; short enough that a dead instance's is retried soon. */
const LEASE_MS = 4 * TIMEOUT_MS;

/** What a receiver gets: the event id to de-duplicate on, and the batch as GET /batches lists it. */
export interface WebhookEvent {
  id: string;
  type: string;
  created_at: string;
  data: BatchSummary;
}

export function signature(secret: string, body: string, unixSeconds: number): string {
  return `t=${unixSeconds},v1=${createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')}`;
}

/** A receiver's check (README shows the same in plain Node): the HMAC matches and `t` is recent. */
export function verifySignature(secret: string, body: string, header: string, toleranceSeconds = 300, nowSeconds = Date.now() / 1000): boolean {
  const parts = Object.fromEntries(header.split(',').map((part) => part.split('=', 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(nowSeconds - t) > toleranceSeconds || !parts.v1) return false;
  const expected = Buffer.from(signature(secret, body, t).split('v1=')[1]!, 'hex');
  const given = Buffer.from(parts.v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export function toWebhookEvent(entry: OutboxEntry): WebhookEvent {
  return { id: entry.id, type: entry.type, created_at: new Date(entry.createdAt).toISOString(), data: toSummary(entry.batch) };
}

/** When to try again after `attempts` failed ones (this one included), or null once a day has passed. */
export function nextAttemptAt(entry: Pick<OutboxEntry, 'createdAt' | 'attempts'>, baseMs: number, now: number): number | null {
  const delay = Math.min(MAX_DELAY_MS, baseMs * 2 ** entry.attempts);
  const at = now + delay;
  return at - entry.createdAt > DAY_MS ? null : at;
}

type WebhookDeps = {
  store: Store;
  logger: Logger;
  instanceId: string;
  config: Pick<Config, 'WEBHOOK_URL' | 'WEBHOOK_SECRET' | 'WEBHOOK_RETRY_BASE_MS' | 'WEBHOOK_POLL_MS'>;
};

/**
 * Delivers the outbox: every instance polls, leases due deliveries (atomically; SKIP
 * LOCKED on PostgreSQL) and POSTs each, signed; a 2xx settles it, anything else is retried
 * with exponential backoff until a day has passed. At least once: a receiver de-duplicates
 * on the event id.
 */
export function startWebhookDelivery(deps: WebhookDeps): { stop: () => Promise<void>; deliverDue: () => Promise<void> } {
  const { store, logger, config } = deps;
  const url = config.WEBHOOK_URL;
  const secret = config.WEBHOOK_SECRET;
  if (url === undefined || secret === undefined) return { stop: async () => undefined, deliverDue: async () => undefined };
  let busy: Promise<void> | null = null;
  let stopped = false;

  const deliver = async (entry: OutboxEntry) => {
    const body = JSON.stringify(toWebhookEvent(entry));
    let error: string;
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'hospital-bulk',
          [SIGNATURE_HEADER]: signature(secret, body, Math.floor(Date.now() / 1000)),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      await response.body?.cancel();
      if (response.ok) {
        await store.settleWebhook(entry.id, deps.instanceId, { delivered: true });
        logger.info('webhook delivered', { event_id: entry.id, type: entry.type, batch_id: entry.batchId, attempts: entry.attempts + 1 });
        return;
      }
      error = `HTTP ${response.status}`;
    } catch (failure) {
      error = failure instanceof Error ? failure.message : String(failure);
    }
    const retryAt = nextAttemptAt({ createdAt: entry.createdAt, attempts: entry.attempts }, config.WEBHOOK_RETRY_BASE_MS, Date.now());
    await store.settleWebhook(entry.id, deps.instanceId, { delivered: false, error, retryAt });
    logger.log(retryAt === null ? 'error' : 'warn', retryAt === null ? 'webhook given up after a day' : 'webhook delivery failed; will retry', {
      event_id: entry.id,
      batch_id: entry.batchId,
      attempts: entry.attempts + 1,
      error,
      ...(retryAt === null ? {} : { retry_in_ms: retryAt - Date.now() }),
    });
  };

  const deliverDue = (): Promise<void> => {
    if (stopped) return busy ?? Promise.resolve();
    busy ??= (async () => {
      try {
        while (!stopped) {
          const due = await store.claimWebhooks({ owner: deps.instanceId, leaseMs: LEASE_MS, limit: 10 });
          if (due.length === 0) return;
          for (const entry of due) {
            // Stopping: the ones leased behind the delivery in flight wait out their lease,
            // then another instance (or this one, started again) delivers them.
            if (stopped) return;
            await deliver(entry);
          }
        }
      } catch (error) {
        logger.error('webhook delivery round failed', { error: error instanceof Error ? error.message : String(error) });
      } finally {
        busy = null;
      }
    })();
    return busy;
  };

  const timer = setInterval(() => void deliverDue(), config.WEBHOOK_POLL_MS);
  timer.unref();
  void deliverDue();
  return {
    /**
     * Polls no more. Resolves once the delivery in flight, if any, has recorded its answer:
     * a shutdown awaits it before closing the database, or a receiver that said 200 would
     * get the event again when its lease runs out.
     */
    stop: () => {
      stopped = true;
      clearInterval(timer);
      return busy ?? Promise.resolve();
    },
    deliverDue,
  };
}
