import { ANNOUNCED, type BatchStatus, type RowStatus } from '../bulk/status.js';
import type { BatchEvent } from '../bulk/events.js';
import type { Readiness } from './migrations.js';

/** One upload. Times are epoch milliseconds (UTC); the API renders them as ISO 8601. */
export interface BatchRecord {
  id: string;
  filename: string;
  status: BatchStatus;
  totalRows: number;
  createdRows: number;
  failedRows: number;
  activated: boolean;
  /** Why the batch as a whole stopped (directory unreachable, activation refused…). */
  error: string | null;
  /** What a resume found out, e.g. that the directory had forgotten the batch. */
  notice: string | null;
  idempotencyKey: string | null;
  fileSha256: string;
  createdAt: number;
  startedAt: number | null;
  completedAt: number | null;
  processingMs: number | null;
  /** Which instance holds the batch while it runs, and until when without renewal. */
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  /** Raised by every claim: a write carrying an older fence comes from a stale owner and changes nothing. */
  fence: number;
  /** When a cancel was asked for while the batch ran; cleared when it finishes or is claimed again. */
  cancelRequestedAt: number | null;
  /** The API key name that uploaded it; null for an unnamed key or none. */
  createdBy: string | null;
}

/** What happened to one CSV row, in file order. */
export interface RowRecord {
  batchId: string;
  row: number;
  line: number;
  name: string;
  address: string;
  phone: string | null;
  status: RowStatus;
  hospitalId: number | null;
  errorMessage: string | null;
  attempts: number;
  /** The directory refused the row as it stands: a resume does not send it again until it is edited. */
  rejected: boolean;
  /** The directory batch it is created in (src/bulk/directoryBatches.ts): the upload's id for rows 1–20. */
  directoryBatchId: string;
  updatedAt: number;
}

export interface StoredEvent {
  /** Increasing per database: the SSE event id, and what Last-Event-ID resumes after. */
  seq: number;
  batchId: string;
  event: BatchEvent;
  createdAt: number;
}

export interface NewBatch {
  id: string;
  /** The uploading key's name (API_KEYS); null or absent when unnamed. */
  createdBy?: string | null;
  filename: string;
  fileSha256: string;
  idempotencyKey: string | null;
  notice?: string | null;
  /** Each row's directory batch (src/bulk/directoryBatches.ts); the upload's own id when absent. */
  rows: { row: number; line: number; name: string; address: string; phone: string | null; directoryBatchId?: string }[];
}

/** The right to write a running batch: held by one owner, proven by the fence it was given. */
export interface Claim {
  batchId: string;
  fence: number;
  owner: string;
}

export type Admission =
  /** Admitted; with `start`, claimed for its owner and started (`claim`). */
  | { kind: 'new'; batch: BatchRecord; claim?: Claim }
  /** The Idempotency-Key was seen before: the batch it created. */
  | { kind: 'existing'; batch: BatchRecord }
  /** MAX_ACTIVE_BATCHES are already running. */
  | { kind: 'full' };

/** Recorded for the report's `audit`: who acted on a batch (an API key's name; null when unnamed), and when. */
export type AuditAction = 'resume' | 'rollback' | 'cancel' | 'edit_row';
export interface AuditEntry {
  action: AuditAction;
  by: string | null;
  at: number;
}

export type CancelResult =
  /** It was queued: cancelled now. */
  | { kind: 'cancelled'; batch: BatchRecord }
  /** It runs: its owner (on any instance) stops after the row in flight. */
  | { kind: 'requested'; batch: BatchRecord }
  | { kind: 'not_found' }
  | { kind: 'conflict'; status: BatchStatus };

/** A completion webhook leased for delivery: the event id, its type and the batch as it was finished. */
export interface OutboxEntry {
  id: string;
  batchId: string;
  type: string;
  batch: BatchRecord;
  createdAt: number;
  attempts: number;
}

export type ClaimResult =
  | { kind: 'claimed'; claim: Claim; previous: BatchRecord }
  | { kind: 'not_found' }
  | { kind: 'conflict'; status: BatchStatus }
  | { kind: 'full' };

export type BatchPatch = Partial<Pick<BatchRecord, 'error' | 'notice' | 'startedAt' | 'completedAt' | 'processingMs' | 'activated'>>;
export type RowPatch = Partial<Pick<RowRecord, 'status' | 'hospitalId' | 'errorMessage' | 'attempts' | 'rejected'>>;
/** One patch for many rows (all of them, or those numbered). */
export interface RowsChange {
  rows: readonly number[] | 'all';
  patch: RowPatch;
}
/** One row's change in a commitRows. */
export interface RowChange {
  row: number;
  patch: RowPatch;
}

/** A person's correction of a row's values (each one already checked like an upload's). */
export type RowValues = Partial<Pick<RowRecord, 'name' | 'address' | 'phone'>>;

export type RowEditResult =
  | { kind: 'edited'; row: RowRecord }
  | { kind: 'not_found' }
  /** The batch is not one whose rows may be edited (see `editRow`). */
  | { kind: 'batch_conflict'; status: BatchStatus }
  /** The row is not one that may be edited (see `editRow`). */
  | { kind: 'row_conflict'; status: RowStatus };

/** The `row` event an edit appends: the row is pending again, without its error. */
export function editedRowEvent(row: RowRecord): BatchEvent {
  return { type: 'row', row: row.row, status: row.status, hospitalId: row.hospitalId, errorMessage: row.errorMessage, attempts: row.attempts, progress: null };
}

/** Whether a finish to `to` with `events` is announced by a completion webhook: a final status, announced to watchers too. */
export function isAnnounced(to: BatchStatus, events: readonly BatchEvent[] | undefined): boolean {
  return ANNOUNCED.includes(to) && (events ?? []).some((event) => event.type === 'status' && event.status === to);
}

/** What the start of a run sets: it starts now, with no error and no completion yet. */
export const runStart = (now: number) => ({ startedAt: now, error: null, completedAt: null });
/** The event that announces a run's start. */
export const RUN_STARTED: BatchEvent = { type: 'status', status: 'processing', error: null };

/** The events of a claim (Store.claimBatch) or an admission: with `start`, a successful one announces the run. */
export const claimEvents =
  (start: boolean) =>
  (result: ClaimResult | Admission): BatchEvent[] | undefined =>
    start && (result.kind === 'claimed' || result.kind === 'new') ? [RUN_STARTED] : undefined;

/** Why a row whose create was on the wire when its process stopped is `unknown`. */
export const STOPPED_WHILE_SENDING = 'The service stopped while this row was being sent; resume the batch to check whether it was created.';

/** A fenced write whose claim is no longer current: another owner has the batch now. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
  constructor(readonly batchId: string) {
    super(`Batch ${batchId} is no longer ours: another instance took it over.`);
  }
}

/** A batch, its rows and its audit trail, read together (Store.findReport). */
export interface BatchSnapshot {
  batch: BatchRecord;
  rows: RowRecord[];
  audit: AuditEntry[];
}

/**
 * The history, on SQLite or PostgreSQL: every read and write the workflow and the routes
 * make. Writes that must land together are one method (one transaction); every status
 * change is a guarded update; every write to a running batch is fenced by its claim and
 * throws LeaseLostError when the claim is stale.
 */
export interface Store {
  readonly engine: 'sqlite' | 'postgres';

  /**
   * Records an upload and its rows as `pending`, in one transaction with the checks that
   * must not race: an Idempotency-Key already used returns that batch; MAX_ACTIVE_BATCHES
   * running answers `full`. With `start`, the batch is recorded already claimed for
   * `start.owner` (fence 1, lease of `start.leaseMs`) and started, as claimBatch with
   * `start` would leave it: `processing`, started at `now`, its `processing` event appended.
   */
  admitBatch(batch: NewBatch, limits: { maxActive: number; start?: { owner: string; leaseMs: number } }, now?: number): Promise<Admission>;
  findBatch(id: string): Promise<BatchRecord | undefined>;
  findBatchByIdempotencyKey(key: string): Promise<BatchRecord | undefined>;
  findRows(batchId: string): Promise<RowRecord[]>;
  /**
   * The batch with its rows (in row order) and its audit trail as of one moment, in one
   * snapshot: what a report shows. Read apart, on PostgreSQL a commit could land between the
   * reads and the report would show, say, a completed batch whose rows are not yet activated.
   */
  findReport(id: string): Promise<BatchSnapshot | undefined>;
  /** Newest first, keyset-paginated on (created_at, id). */
  listBatches(limit: number, after?: { createdAt: number; id: string }): Promise<BatchRecord[]>;
  /** Batches queued or running (counted against MAX_ACTIVE_BATCHES). */
  countRunning(): Promise<number>;
  /** How many batches the history holds in each status (what every instance's metrics report). */
  countBatchesByStatus(): Promise<Partial<Record<BatchStatus, number>>>;
  /** A cheap query: the database answers and has every migration this code ships. */
  checkReady(): Promise<Readiness>;

  /**
   * Moves a batch in one of `from` to `processing` for `owner`, raising its fence and
   * clearing a cancel request. With `maxActive`, refuses (`full`) when that many batches
   * already run; with `audit`, records who did it; with `start`, starts the run (started
   * at `now`, no error or completion, and the `processing` status event); all in the same
   * transaction.
   */
  claimBatch(
    id: string,
    options: { from: readonly BatchStatus[]; owner: string; leaseMs: number; maxActive?: number; audit?: Omit<AuditEntry, 'at'>; start?: boolean },
    now?: number,
  ): Promise<ClaimResult>;
  /**
   * Takes over one batch a stop left unfinished, for `owner`: an `interrupted` batch, or a
   * running one whose lease ran out (or that was never claimed within `leaseMs`). Rows
   * caught on the wire become `unknown` in the same transaction. Oldest first; on
   * PostgreSQL with SKIP LOCKED, so instances polling at once take different batches.
   * Null when there is none.
   */
  claimOrphan(options: { owner: string; leaseMs: number }, now?: number): Promise<Extract<ClaimResult, { kind: 'claimed' }> | null>;
  /** Extends the claim's lease; throws LeaseLostError when it is no longer the batch's claim. */
  renewLease(claim: Claim, leaseMs: number, now?: number): Promise<void>;
  /**
   * Guarded, fenced status change out of `processing`; releases the lease. Appends `events`,
   * and applies `rows` (recounting the counters), in the same transaction.
   */
  finishBatch(claim: Claim, to: BatchStatus, patch: BatchPatch, events?: BatchEvent[], rows?: RowsChange, now?: number): Promise<void>;
  /** Fenced update of batch fields (never its status). */
  updateBatch(claim: Claim, patch: BatchPatch, events?: BatchEvent[], now?: number): Promise<void>;
  /** Fenced update of rows (all of them, or those numbered), recounting the batch's counters, with `events`, in one transaction. */
  updateRows(claim: Claim, rows: readonly number[] | 'all', patch: RowPatch, events?: BatchEvent[], now?: number): Promise<void>;
  /**
   * Fenced update of several rows, each with its own patch (applied in order), recounting the
   * counters, with `events`, in one transaction. Says whether a cancel has been asked for, read
   * in the same transaction: a run learns of one with every commit, at no extra read.
   */
  commitRows(claim: Claim, changes: readonly RowChange[], events?: BatchEvent[], now?: number): Promise<{ cancelRequested: boolean }>;

  /**
   * Corrects a row's values, in one transaction, only while its batch is in `ROW_EDITABLE_BATCHES`
   * (so no run holds it) and the row in `EDITABLE_ROWS` (src/bulk/status.ts), both checked there
   * and then, so a resume claiming the batch at the same moment cannot race it. The row goes
   * back to `pending`, without its error and no longer `rejected`; the counters are recounted
   * and a `row` event appended. Needs no claim: no run holds the batch.
   */
  editRow(batchId: string, row: number, values: RowValues, now?: number): Promise<RowEditResult>;

  /**
   * Cancels a queued batch at once (with a `status` event, and its webhook), or records the
   * request for a running one, whose owner sees it with `isCancelRequested`; records `by`.
   */
  requestCancel(id: string, by: string | null, now?: number): Promise<CancelResult>;
  /** Whether a cancel was asked for this running batch: one primary-key read, checked between rows. */
  isCancelRequested(batchId: string): Promise<boolean>;
  /** Records who did what to a batch (a row edit, for example), outside a claim. */
  appendAudit(batchId: string, entry: Omit<AuditEntry, 'at'>, now?: number): Promise<void>;
  /** Oldest first. */
  findAudit(batchId: string): Promise<AuditEntry[]>;

  /**
   * Leases up to `limit` due webhook deliveries for `owner` (SKIP LOCKED on PostgreSQL, so
   * instances polling at once take different ones). Only with the store's `outbox` option
   * are entries written: by finishBatch / requestCancel reaching an announced final status.
   */
  claimWebhooks(options: { owner: string; leaseMs: number; limit: number }, now?: number): Promise<OutboxEntry[]>;
  /** Records a delivery attempt's result: delivered, retry at `retryAt`, or (retryAt null) given up. */
  settleWebhook(id: string, owner: string, result: { delivered: true } | { delivered: false; error: string; retryAt: number | null }, now?: number): Promise<void>;

  /** The batch's events after `seq`, oldest first. */
  eventsAfter(batchId: string, seq: number): Promise<StoredEvent[]>;
  /** Calls `onChange` after each committed write that appended events to the batch; returns the unsubscribe. */
  watch(batchId: string, onChange: () => void): () => void;

  /**
   * Batches a dead owner left `pending` or `processing` become `interrupted`, and rows whose
   * create was on the wire become `unknown`; returns their ids. With `leaseExpiredOnly`
   * (several instances share the database) only batches whose lease ran out, or that were
   * never claimed within `leaseMs`; otherwise every one (a single process, at start-up).
   */
  interruptOrphans(options: { leaseExpiredOnly: boolean; leaseMs: number }, now?: number): Promise<string[]>;

  close(): Promise<void>;
}
