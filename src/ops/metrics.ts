import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BATCH_STATUSES } from '../bulk/status.js';
import type { Store } from '../db/store.js';
import type { CreateOutcome, DirectoryObserver } from '../directory/types.js';

/** What a row came to, as `hospital_bulk_rows_total{outcome}` counts it. */
export type RowOutcome = 'created' | 'adopted' | 'rejected' | 'failed' | 'unknown';

/** How a create's settled outcome is counted (a lost answer is counted once it is settled). */
export function rowOutcomeOf(result: Exclude<CreateOutcome, { kind: 'lost' } | { kind: 'withheld' }>): RowOutcome {
  switch (result.kind) {
    case 'created':
      return result.adopted ? 'adopted' : 'created';
    case 'rejected':
      return 'rejected';
    case 'failed':
      return result.outcome === 'unknown' ? 'unknown' : 'failed';
  }
}

/** The directory as this instance last heard from it: readiness reports it without calling the directory. */
export interface DirectoryState {
  state: 'unknown' | 'reachable' | 'unreachable';
  lastStatus: number | null;
  lastAnswerAt: number | null;
}

/**
 * This instance's Prometheus registry. Request and directory counters are per process
 * (Prometheus sums instances); batch totals and the running gauge are counted in the store
 * at each scrape, so every instance reports the same, true number.
 */
export function createMetrics(store: Pick<Store, 'countBatchesByStatus'>) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  new Gauge({
    name: 'hospital_bulk_batches_total',
    help: 'Batches in the history by current status (counted in the shared database at each scrape).',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const counts = await store.countBatchesByStatus();
      for (const status of BATCH_STATUSES) this.set({ status }, counts[status] ?? 0);
    },
  });
  new Gauge({
    name: 'hospital_bulk_batches_running',
    help: 'Batches pending or processing, on any instance (counted in the shared database at each scrape).',
    registers: [registry],
    async collect() {
      const counts = await store.countBatchesByStatus();
      this.set((counts.pending ?? 0) + (counts.processing ?? 0));
    },
  });
  const rows = new Counter({
    name: 'hospital_bulk_rows_total',
    help: 'Row outcomes this instance recorded.',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const directoryRequests = new Counter({
    name: 'hospital_bulk_directory_requests_total',
    help: 'Requests this instance sent to the Hospital Directory, by operation, outcome (ok, rejected, not_sent, unknown) and HTTP status ("none" without an answer).',
    labelNames: ['operation', 'outcome', 'status'],
    registers: [registry],
  });
  const directoryDuration = new Histogram({
    name: 'hospital_bulk_directory_request_duration_seconds',
    help: 'How long each directory request took, after any pacing wait.',
    labelNames: ['operation'],
    // A create sleeps ~5 s upstream; a cold start takes 30-60 s.
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 7.5, 10, 20, 30, 60, 120],
    registers: [registry],
  });
  const rateLimitWait = new Histogram({
    name: 'hospital_bulk_directory_rate_limit_wait_seconds',
    help: "How long each directory request waited for the directory's rate window before it was sent.",
    buckets: [0, 0.1, 0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90],
    registers: [registry],
  });
  const refused = new Counter({
    name: 'hospital_bulk_requests_refused_total',
    help: 'Requests this instance refused, by problem code (unauthorized, rate_limited, overloaded, shutting_down, ...).',
    labelNames: ['reason'],
    registers: [registry],
  });
  for (const outcome of ['created', 'adopted', 'rejected', 'failed', 'unknown'] satisfies RowOutcome[]) rows.inc({ outcome }, 0);

  const directory: DirectoryState = { state: 'unknown', lastStatus: null, lastAnswerAt: null };
  const observer: DirectoryObserver = {
    request({ op, outcome, status, seconds, waitedSeconds }) {
      directoryRequests.inc({ operation: op, outcome, status: status === null ? 'none' : String(status) });
      directoryDuration.observe({ operation: op }, seconds);
      rateLimitWait.observe(waitedSeconds);
      // Any HTTP answer, even a 429 or a 422, means the directory is there; a 5xx or no answer does not.
      directory.state = status !== null && status < 500 ? 'reachable' : 'unreachable';
      directory.lastStatus = status;
      directory.lastAnswerAt = Date.now();
    },
  };

  return {
    registry,
    /** Hand it to the directory client: it is told about every request sent. */
    directoryObserver: observer,
    /** The directory's last known state (readiness shows it). */
    get directory(): Readonly<DirectoryState> {
      return directory;
    },
    rowOutcome(outcome: RowOutcome): void {
      rows.inc({ outcome });
    },
    refused(reason: string): void {
      refused.inc({ reason });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
