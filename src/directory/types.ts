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

/** The client's operations, as named in logs and in waits. */
export const DIRECTORY_OPS = ['wake', 'create', 'activate', 'get_batch', 'delete_batch', 'list'] as const;
export type DirectoryOp = (typeof DIRECTORY_OPS)[number];

/**
 * The client is about to wait before trying again. `retry`: a failed attempt's backoff
 * (`attempt` is the one that failed). `rate_limited`: the request is held until the
 * directory's rate window lets it through (`attempt` is the one held; `status` 429 when
 * the directory refused us, null when we pace ourselves under its limit).
 */
export interface DirectoryWait {
  op: DirectoryOp;
  reason: 'retry' | 'rate_limited';
  attempt: number;
  status: number | null;
  message: string;
  delayMs: number;
}

/** Told about every request sent to the directory (metrics, readiness); must not throw. */
export interface DirectoryObserver {
  request(request: {
    op: DirectoryOp;
    outcome: 'ok' | 'rejected' | 'not_sent' | 'unknown';
    status: number | null;
    /** The request itself, after pacing. */
    seconds: number;
    /** Held by the rate limiter before it was sent. */
    waitedSeconds: number;
  }): void;
}

/** Who a directory call is for, so every log line about it names the batch and row. */
export interface CallContext {
  batchId?: string;
  row?: number;
  /** Told whenever the call is about to wait before trying again, so a user can see why nothing moves. */
  onWait?: (wait: DirectoryWait) => void;
}

export type CreateOutcome =
  | { kind: 'created'; hospital: Hospital; attempts: number; adopted: boolean }
  /** The directory refused the row (400/404/409/422): sending it again will not help. */
  | { kind: 'rejected'; status: number; message: string; attempts: number }
  /**
   * The last attempt's answer was lost (a timeout after sending, a reset, a 5xx): the create
   * may still be stored. Settle it with `settleLostCreates` before re-sending; `lostAt` is
   * when the attempt ended, never earlier than its send, so "settle time since lostAt" is
   * never too short.
   */
  | { kind: 'lost'; message: string; status: number | null; attempts: number; lostAt: number }
  /** Gave up. `not_created`: confirmed absent upstream. `unknown`: it may exist; reconcile before re-sending. */
  | { kind: 'failed'; outcome: 'not_created' | 'unknown'; message: string; attempts: number }
  /** Not sent at all: the caller's `ready` said no. */
  | { kind: 'withheld' };

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
