import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { and, asc, count, desc, eq, getTableColumns, gt, inArray, isNull, lt, lte, or, sql, type SQL, type Table } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import type { BatchEvent } from '../../bulk/events.js';
import { assertTransition, CANCELLABLE, CREATED_ROWS, EDITABLE_ROWS, FAILED_ROWS, ROW_EDITABLE_BATCHES, RUNNING, type BatchStatus } from '../../bulk/status.js';
import { migrationsFolder, readinessFrom } from '../migrations.js';
import {
  editedRowEvent,
  isAnnounced,
  claimEvents,
  RUN_STARTED,
  LeaseLostError,
  runStart,
  STOPPED_WHILE_SENDING,
  type Admission,
  type AuditEntry,
  type BatchPatch,
  type BatchRecord,
  type CancelResult,
  type ClaimResult,
  type RowEditResult,
  type RowPatch,
  type RowRecord,
  type Store,
} from '../store.js';
import { listen } from './listen.js';
import { createPool } from './pool.js';
import * as schema from './schema.js';
import { batchAudit, batchEvents, batchRows, batches, webhookOutbox } from './schema.js';

type PgDb = ReturnType<typeof drizzle<typeof schema>>;
type Tx = Parameters<Parameters<PgDb['transaction']>[0]>[0];

/** Wakes every instance's event streams: the payload is the batch id. */
const CHANNEL = 'hospital_bulk_events';
// Admission (MAX_ACTIVE_BATCHES, Idempotency-Key) is decided under one transaction-scoped
// advisory lock, so two instances cannot both count "room for one more".
const ADMISSION_LOCK_SQL = 'select pg_advisory_xact_lock(7263541)';
const ADMISSION_LOCK = sql.raw(ADMISSION_LOCK_SQL);
/**
 * Store.admitBatch in one statement, run under ADMISSION_LOCK (so its snapshot, taken after
 * the lock, sees every admission before it): the batch with id $1 and all its rows, unless
 * Idempotency-Key $4 is already taken (`earlier` names that batch) or $10 batches in the
 * statuses $11 already run (`room` false). $2 filename, $3 file SHA-256, $5 notice, $6
 * created by, $7 total rows, $8 now, $9 the rows as JSON ([{row, line, name, address,
 * phone, directoryBatchId}]). With owner $12 (else null): claimed for it with a lease of
 * $13 ms and started, event $14 appended and announced on channel $15. `batch`: the batch
 * inserted, as JSON with the column names.
 */
const ADMIT = `
  with earlier as (select id from batches where $4::text is not null and idempotency_key = $4::text),
  room as (select count(*) < $10::integer as ok from batches where status = any($11::text[])),
  inserted as (
    insert into batches (id, filename, file_sha256, idempotency_key, notice, created_by, total_rows, created_at,
      status, fence, lease_owner, lease_expires_at, started_at)
    select $1, $2, $3, $4::text, $5, $6, $7, $8::bigint,
      case when $12::text is null then 'pending' else 'processing' end, case when $12::text is null then 0 else 1 end,
      $12::text, $8::bigint + $13::bigint, case when $12::text is not null then $8::bigint end
    where not exists (select 1 from earlier) and (select ok from room)
    returning *),
  added as (
    insert into batch_rows (batch_id, row, line, name, address, phone, directory_batch_id, status, updated_at)
    select $1, r.row, r.line, r.name, r.address, r.phone, coalesce(r."directoryBatchId", $1), 'pending', $8::bigint
    from jsonb_to_recordset($9::jsonb) as r(row integer, line integer, name text, address text, phone text, "directoryBatchId" text)
    where exists (select 1 from inserted)),
  started as (
    insert into batch_events (batch_id, type, data, created_at)
    select $1, $14::jsonb->>'type', $14::jsonb, $8::bigint where $12::text is not null and exists (select 1 from inserted))
  select (select id from earlier) as earlier, (select ok from room) as room, (select row_to_json(inserted) from inserted) as batch,
    (select pg_notify($15, $1) where $12::text is not null and exists (select 1 from inserted)) as notified`;
/** The row `alias` of `batches` as jsonb keyed as BatchRecord is (what drizzle stores for a record in a jsonb column). */
const batchAsRecord = (alias: string) =>
  `jsonb_build_object(${Object.entries(getTableColumns(batches))
    .map(([key, column]) => `'${key}', ${alias}.${column.name}`)
    .join(', ')})`;
/**
 * Store.finishBatch in one statement (so one round trip, not six). $1 batch id, $2 fence,
 * $3 the status it goes to, $4 the batch's patch as JSON (the fields of BatchPatch; one
 * absent is left as it is), $5 and $6 the rows change: the row numbers (null: all) and the
 * patch as JSON (the fields of RowPatch; $6 null: no rows change), $7 now, $8 and $9 the
 * row statuses counted as created and as failed, $10 the events as JSON, $11 the channel
 * that announces them, $12 the webhook to leave in the outbox ({id, type}, or null).
 * `finished` false: the claim is stale (or the batch no longer processing), and nothing changed.
 */
const FINISH = `
  with locked as materialized (
    select id from batches where id = $1 and fence = $2 and status = 'processing' for update),
  rp as (select $6::jsonb as p where $6::jsonb is not null),
  updated_rows as (
    update batch_rows r set
      status = case when rp.p ? 'status' then rp.p->>'status' else r.status end,
      hospital_id = case when rp.p ? 'hospitalId' then (rp.p->>'hospitalId')::integer else r.hospital_id end,
      error_message = case when rp.p ? 'errorMessage' then rp.p->>'errorMessage' else r.error_message end,
      attempts = case when rp.p ? 'attempts' then (rp.p->>'attempts')::integer else r.attempts end,
      rejected = case when rp.p ? 'rejected' then (rp.p->>'rejected')::boolean else r.rejected end,
      updated_at = $7
    from rp where r.batch_id = $1 and ($5::integer[] is null or r.row = any($5::integer[])) and exists (select 1 from locked)
    returning r.row, r.status),
  counted as (
    select count(*) filter (where s = any($8::text[])) as created, count(*) filter (where s = any($9::text[])) as failed
    from (select coalesce(u.status, r.status) as s from batch_rows r left join updated_rows u on u.row = r.row where r.batch_id = $1) rows),
  bp as (select $4::jsonb as p),
  updated as (
    update batches b set
      error = case when bp.p ? 'error' then bp.p->>'error' else b.error end,
      notice = case when bp.p ? 'notice' then bp.p->>'notice' else b.notice end,
      started_at = case when bp.p ? 'startedAt' then (bp.p->>'startedAt')::bigint else b.started_at end,
      completed_at = case when bp.p ? 'completedAt' then (bp.p->>'completedAt')::bigint else b.completed_at end,
      processing_ms = case when bp.p ? 'processingMs' then (bp.p->>'processingMs')::bigint else b.processing_ms end,
      activated = case when bp.p ? 'activated' then (bp.p->>'activated')::boolean else b.activated end,
      created_rows = counted.created, failed_rows = counted.failed,
      status = $3, lease_owner = null, lease_expires_at = null, cancel_requested_at = null
    from counted, bp where b.id = $1 and exists (select 1 from locked)
    returning b.*),
  outboxed as (
    insert into webhook_outbox (id, batch_id, type, batch, created_at, next_attempt_at)
    select $12::jsonb->>'id', $1, $12::jsonb->>'type', ${batchAsRecord('updated')}, $7, $7 from updated where $12::jsonb is not null),
  inserted as (
    insert into batch_events (batch_id, type, data, created_at)
    select $1, e->>'type', e, $7 from jsonb_array_elements($10::jsonb) with ordinality as t(e, n)
    where exists (select 1 from updated) order by n)
  select exists (select 1 from updated) as finished,
    (select pg_notify($11, $1) where jsonb_array_length($10::jsonb) > 0 and exists (select 1 from updated)) as notified`;
/**
 * Store.findReport in one statement, so in one snapshot: the batch $1 (null when there is
 * none), its rows in row order and its audit trail, each as JSON with the column names.
 */
const FIND_REPORT = `
  select row_to_json(b) as batch,
    (select coalesce(json_agg(r order by r.row), '[]') from batch_rows r where r.batch_id = b.id) as rows,
    (select coalesce(json_agg(json_build_object('action', a.action, 'by', a.by, 'at', a.at) order by a.id), '[]')
      from batch_audit a where a.batch_id = b.id) as audit
  from batches b where b.id = $1`;
/**
 * Reads a row of `table` as row_to_json gives it (by column name) into the record drizzle's
 * select returns: every column of the table, each mapped by its own column.
 */
function fromJson<T>(table: Table): (row: Record<string, unknown>) => T {
  const columns = Object.entries(getTableColumns(table));
  return (row) => {
    const record: Record<string, unknown> = {};
    for (const [key, column] of columns) {
      const value = row[column.name];
      record[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
    }
    return record as T;
  };
}
const batchFromJson = fromJson<BatchRecord>(batches);
const rowFromJson = fromJson<RowRecord>(batchRows);
/** A batch's counters, counted from its rows (in an update of `batches`). */
const counted = (statuses: readonly string[]) =>
  sql<number>`(select count(*) from ${batchRows} where ${batchRows.batchId} = ${batches.id} and ${inArray(batchRows.status, [...statuses] as never[])})`;
const counters = { createdRows: counted(CREATED_ROWS), failedRows: counted(FAILED_ROWS) };
/** The rows `rows` names of a batch: all of them, or those numbered. */
const rowsOf = (batchId: string, rows: readonly number[] | 'all') =>
  rows === 'all' ? eq(batchRows.batchId, batchId) : and(eq(batchRows.batchId, batchId), inArray(batchRows.row, [...rows]));
/**
 * Store.commitRows in one statement. $1 batch id, $2 fence, $3 the patches as JSON
 * ([{row, patch}], each row once; a field absent from a patch is left as it is), $4 now,
 * $5 and $6 the row statuses counted as created and as failed, $7 the events as JSON,
 * $8 the channel that announces them. A row's `patch` has the fields of RowPatch.
 */
const COMMIT_ROWS = `
  with locked as materialized (
    select cancel_requested_at from batches where id = $1 and fence = $2 for update),
  v as (select (c->>'row')::integer as row, c->'patch' as patch from jsonb_array_elements($3::jsonb) c),
  updated as (
    update batch_rows r set
      status = case when v.patch ? 'status' then v.patch->>'status' else r.status end,
      hospital_id = case when v.patch ? 'hospitalId' then (v.patch->>'hospitalId')::integer else r.hospital_id end,
      error_message = case when v.patch ? 'errorMessage' then v.patch->>'errorMessage' else r.error_message end,
      attempts = case when v.patch ? 'attempts' then (v.patch->>'attempts')::integer else r.attempts end,
      rejected = case when v.patch ? 'rejected' then (v.patch->>'rejected')::boolean else r.rejected end,
      updated_at = $4
    from v where r.batch_id = $1 and r.row = v.row and exists (select 1 from locked)
    returning r.row, r.status),
  counted as (
    select count(*) filter (where s = any($5::text[])) as created, count(*) filter (where s = any($6::text[])) as failed
    from (select coalesce(u.status, r.status) as s from batch_rows r left join updated u on u.row = r.row where r.batch_id = $1) rows),
  recounted as (
    update batches set created_rows = counted.created, failed_rows = counted.failed from counted
    where id = $1 and exists (select 1 from locked)),
  inserted as (
    insert into batch_events (batch_id, type, data, created_at)
    select $1, e->>'type', e, $4 from jsonb_array_elements($7::jsonb) with ordinality as t(e, n)
    where exists (select 1 from locked) order by n)
  select exists (select 1 from locked) as fenced, (select cancel_requested_at is not null from locked) as cancel_requested,
    (select pg_notify($8, $1) where jsonb_array_length($7::jsonb) > 0 and exists (select 1 from locked)) as notified`;

/** Opens a pool on `url` (its sslmode honoured by pg), migrates, and serves the Store on it. */
export async function createPostgresStore(url: string, { migrate: run = true, outbox = false } = {}): Promise<Store> {
  // Two kept open: a run's commits and the reads and lease renewals beside them.
  const pool = createPool(url, { max: 10, keep: 2 });
  const db = drizzle(pool, { schema });
  if (run) await migratePostgres(url);
  const changed = new EventEmitter().setMaxListeners(0);
  // A stream on this instance hears about batches other instances run.
  const listener = await listen(url, CHANNEL, (batchId) => changed.emit(batchId));

  /**
   * One transaction: `work`, then `events` stored and announced to every instance. `last`, a
   * data-modifying statement `work` would end with (a recount), shares a round trip with the events.
   */
  async function write<T>(
    batchId: string,
    eventsOf: BatchEvent[] | undefined | ((value: T) => BatchEvent[] | undefined),
    now: number,
    work: (tx: Tx) => Promise<T>,
    last?: { getSQL(): SQL },
  ): Promise<T> {
    let announce = false;
    const result = await db.transaction(async (tx) => {
      const value = await work(tx);
      const events = (typeof eventsOf === 'function' ? eventsOf(value) : eventsOf) ?? [];
      announce = events.length > 0;
      const steps = [
        ...(last ? [last] : []),
        ...(announce ? [tx.insert(batchEvents).values(events.map((event) => ({ batchId, type: event.type, data: event, createdAt: now })))] : []),
      ];
      // Data-modifying WITH clauses all run, in one statement; NOTIFY is delivered at commit.
      if (steps.length > 0) {
        await tx.execute(sql`with ${sql.join(steps.map((step, i) => sql`${sql.identifier(`step${i}`)} as (${step.getSQL()})`), sql`, `)}
          select ${announce ? sql`pg_notify(${CHANNEL}, ${batchId})` : sql`1`}`);
      }
      return value;
    });
    if (announce) changed.emit(batchId);
    return result;
  }

  const fenced = (claim: { batchId: string; fence: number }) => and(eq(batches.id, claim.batchId), eq(batches.fence, claim.fence));
  const mustChange = (batchId: string, rowCount: number | null) => {
    if (rowCount !== 1) throw new LeaseLostError(batchId);
  };
  const lockFenced = async (tx: Tx, claim: { batchId: string; fence: number }) => {
    const locked = await tx.select({ id: batches.id }).from(batches).where(fenced(claim)).for('update');
    if (locked.length !== 1) throw new LeaseLostError(claim.batchId);
  };
  const running = async (tx: Tx | PgDb) =>
    (await tx.select({ n: count() }).from(batches).where(inArray(batches.status, RUNNING)))[0]?.n ?? 0;
  /** Sets the batch's counters from its rows (a statement; run it after the rows changed). */
  const recountOf = (tx: Tx | PgDb, where: SQL | undefined) => tx.update(batches).set(counters).where(where);
  const recount = async (tx: Tx, where: SQL | undefined) => (await recountOf(tx, where)).rowCount;
  /** This process's writes of one batch's rows run one after another (commitRows counts on it). */
  const turns = new Map<string, Promise<unknown>>();
  const inTurn = <T>(batchId: string, work: () => Promise<T>): Promise<T> => {
    const result = (turns.get(batchId) ?? Promise.resolve()).then(work);
    const tail = result.catch(() => undefined);
    turns.set(batchId, tail);
    void tail.then(() => {
      if (turns.get(batchId) === tail) turns.delete(batchId);
    });
    return result;
  };
  const newestFirst = [desc(batches.createdAt), desc(batches.id)];
  const reads = prepareReads(db);
  let closing: Promise<void> | undefined;
  /** With WEBHOOK_URL set: a batch reaching an announced final state leaves a delivery in the outbox, in the same transaction. */
  const enqueueWebhook = async (tx: Tx, batchId: string, to: BatchStatus, now: number) => {
    if (!outbox) return;
    const [batch] = await tx.select().from(batches).where(eq(batches.id, batchId));
    await tx.insert(webhookOutbox).values({ id: randomUUID(), batchId, type: `batch.${to}`, batch: batch!, createdAt: now, nextAttemptAt: now });
  };

  return {
    engine: 'postgres',

    async admitBatch(batch, { maxActive, start }, now = Date.now()): Promise<Admission> {
      // Three round trips: the transaction opened with the lock taken, ADMIT, the commit.
      const client = await pool.connect();
      let admitted: { earlier: string | null; room: boolean; batch: Record<string, unknown> | null };
      try {
        await client.query(`begin; ${ADMISSION_LOCK_SQL}`);
        const rows = batch.rows.map(({ row, line, name, address, phone, directoryBatchId }) => ({ row, line, name, address, phone, directoryBatchId }));
        const values = [
          ...[batch.id, batch.filename, batch.fileSha256, batch.idempotencyKey, batch.notice ?? null, batch.createdBy ?? null, batch.rows.length, now, JSON.stringify(rows)],
          ...[maxActive, RUNNING, start?.owner ?? null, start?.leaseMs ?? null, JSON.stringify(RUN_STARTED), CHANNEL],
        ];
        admitted = (await client.query<typeof admitted>({ name: 'admit_batch', text: ADMIT, values })).rows[0]!;
        await client.query('commit');
      } catch (error) {
        await client.query('rollback').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
      if (admitted.batch) {
        // Started: its `processing` event was appended, as write() would announce it.
        if (start) changed.emit(batch.id);
        return { kind: 'new', batch: batchFromJson(admitted.batch), ...(start ? { claim: { batchId: batch.id, fence: 1, owner: start.owner } } : {}) };
      }
      // The earlier batch, read once committed: batches are never deleted.
      if (admitted.earlier !== null) return { kind: 'existing', batch: (await reads.batch.execute({ id: admitted.earlier }))[0]! };
      return { kind: 'full' };
    },

    async findBatch(id) {
      return (await reads.batch.execute({ id }))[0];
    },
    async findReport(id) {
      const { rows } = await pool.query<{ batch: Record<string, unknown>; rows: Record<string, unknown>[]; audit: AuditEntry[] }>({
        name: 'hb_find_report',
        text: FIND_REPORT,
        values: [id],
      });
      const [found] = rows;
      return found && { batch: batchFromJson(found.batch), rows: found.rows.map(rowFromJson), audit: found.audit };
    },
    async findBatchByIdempotencyKey(key) {
      return (await db.select().from(batches).where(eq(batches.idempotencyKey, key)))[0];
    },
    async findRows(batchId) {
      return reads.rows.execute({ batchId });
    },
    async listBatches(limit, after) {
      return after ? reads.olderPage.execute({ limit, createdAt: after.createdAt, id: after.id }) : reads.firstPage.execute({ limit });
    },
    async countRunning() {
      return running(db);
    },
    async countBatchesByStatus() {
      const counted = await db.select({ status: batches.status, n: count() }).from(batches).groupBy(batches.status);
      return Object.fromEntries(counted.map(({ status, n }) => [status, n]));
    },
    async checkReady() {
      return readinessFrom('postgres', async () => {
        const { rows } = await pool.query<{ n: string }>('select count(*) as n from drizzle.__drizzle_migrations');
        return Number(rows[0]!.n);
      });
    },

    async claimBatch(id, { from, owner, leaseMs, maxActive, audit, start }, now = Date.now()): Promise<ClaimResult> {
      assertTransition(from, 'processing');
      return write(id, claimEvents(start === true), now, async (tx): Promise<ClaimResult> => {
        if (maxActive !== undefined) await tx.execute(ADMISSION_LOCK);
        const [batch] = await tx.select().from(batches).where(eq(batches.id, id)).for('update');
        if (!batch) return { kind: 'not_found' };
        if (!from.includes(batch.status)) return { kind: 'conflict', status: batch.status };
        if (maxActive !== undefined && (await running(tx)) >= maxActive) return { kind: 'full' };
        const fence = batch.fence + 1;
        await tx
          .update(batches)
          .set({ status: 'processing', fence, leaseOwner: owner, leaseExpiresAt: now + leaseMs, cancelRequestedAt: null, ...(start ? runStart(now) : {}) })
          .where(eq(batches.id, id));
        if (audit) await tx.insert(batchAudit).values({ batchId: id, ...audit, at: now });
        return { kind: 'claimed', claim: { batchId: id, fence, owner }, previous: batch };
      });
    },

    async claimOrphan({ owner, leaseMs }, now = Date.now()) {
      const orphaned = or(
        eq(batches.status, 'interrupted'),
        and(inArray(batches.status, RUNNING), or(lt(batches.leaseExpiresAt, now), and(isNull(batches.leaseOwner), lt(batches.createdAt, now - leaseMs)))),
      );
      // Every instance asks every second and almost always finds nothing: a plain read says so
      // in one round trip, without a transaction (the transaction below decides).
      if ((await db.select({ id: batches.id }).from(batches).where(orphaned).limit(1)).length === 0) return null;
      return db.transaction(async (tx) => {
        // SKIP LOCKED: instances polling at the same moment take different batches, none waits.
        const [batch] = await tx.select().from(batches).where(orphaned).orderBy(asc(batches.createdAt)).limit(1).for('update', { skipLocked: true });
        if (!batch) return null;
        const fence = batch.fence + 1;
        await tx
          .update(batchRows)
          .set({ status: 'unknown', errorMessage: STOPPED_WHILE_SENDING, updatedAt: now })
          .where(and(eq(batchRows.batchId, batch.id), eq(batchRows.status, 'creating')));
        await recount(tx, eq(batches.id, batch.id));
        await tx.update(batches).set({ status: 'processing', fence, leaseOwner: owner, leaseExpiresAt: now + leaseMs }).where(eq(batches.id, batch.id));
        return { kind: 'claimed' as const, claim: { batchId: batch.id, fence, owner }, previous: batch };
      });
    },

    async renewLease(claim, leaseMs, now = Date.now()) {
      mustChange(claim.batchId, (await db.update(batches).set({ leaseExpiresAt: now + leaseMs }).where(fenced(claim))).rowCount);
    },

    async finishBatch(claim, to: BatchStatus, patch: BatchPatch, events = [], rows, now = Date.now()) {
      assertTransition(['processing'], to);
      const values = [
        ...[claim.batchId, claim.fence, to, JSON.stringify(patch), rows && rows.rows !== 'all' ? [...rows.rows] : null, rows ? JSON.stringify(rows.patch) : null],
        ...[now, CREATED_ROWS, FAILED_ROWS, JSON.stringify(events), CHANNEL],
        outbox && isAnnounced(to, events) ? JSON.stringify({ id: randomUUID(), type: `batch.${to}` }) : null,
      ];
      const { rows: [result] } = await inTurn(claim.batchId, () => pool.query<{ finished: boolean }>({ name: 'finish_batch', text: FINISH, values }));
      mustChange(claim.batchId, result?.finished ? 1 : 0);
      if (events.length > 0) changed.emit(claim.batchId);
    },

    async requestCancel(id, by, now = Date.now()) {
      assertTransition(['pending'], 'cancelled');
      const result = await db.transaction(async (tx): Promise<CancelResult> => {
        const [batch] = await tx.select().from(batches).where(eq(batches.id, id)).for('update');
        if (!batch) return { kind: 'not_found' };
        if (!CANCELLABLE.includes(batch.status)) return { kind: 'conflict', status: batch.status };
        await tx.insert(batchAudit).values({ batchId: id, action: 'cancel', by, at: now });
        if (batch.status === 'processing') {
          const [updated] = await tx.update(batches).set({ cancelRequestedAt: now }).where(eq(batches.id, id)).returning();
          return { kind: 'requested', batch: updated! };
        }
        const [cancelled] = await tx
          .update(batches)
          .set({ status: 'cancelled', completedAt: now, fence: batch.fence + 1, leaseOwner: null, leaseExpiresAt: null })
          .where(eq(batches.id, id))
          .returning();
        await tx.insert(batchEvents).values({ batchId: id, type: 'status', data: { type: 'status', status: 'cancelled', error: null }, createdAt: now });
        await tx.execute(sql`select pg_notify(${CHANNEL}, ${id})`);
        await enqueueWebhook(tx, id, 'cancelled', now);
        return { kind: 'cancelled', batch: cancelled! };
      });
      if (result.kind === 'cancelled') changed.emit(id);
      return result;
    },

    async isCancelRequested(batchId) {
      const [row] = await db.select({ at: batches.cancelRequestedAt }).from(batches).where(eq(batches.id, batchId));
      return row?.at != null;
    },

    async appendAudit(batchId, entry, now = Date.now()) {
      await db.insert(batchAudit).values({ batchId, ...entry, at: now });
    },

    async findAudit(batchId) {
      return (await db
        .select({ action: batchAudit.action, by: batchAudit.by, at: batchAudit.at })
        .from(batchAudit)
        .where(eq(batchAudit.batchId, batchId))
        .orderBy(asc(batchAudit.id))) as AuditEntry[];
    },

    async claimWebhooks({ owner, leaseMs, limit }, now = Date.now()) {
      return db.transaction(async (tx) => {
        const due = await tx
          .select()
          .from(webhookOutbox)
          .where(and(isNull(webhookOutbox.deliveredAt), isNull(webhookOutbox.abandonedAt), lte(webhookOutbox.nextAttemptAt, now), or(isNull(webhookOutbox.leaseUntil), lt(webhookOutbox.leaseUntil, now))))
          .orderBy(asc(webhookOutbox.createdAt))
          .limit(limit)
          // Instances polling at the same moment take different deliveries; none waits.
          .for('update', { skipLocked: true });
        if (due.length === 0) return [];
        await tx
          .update(webhookOutbox)
          .set({ leaseOwner: owner, leaseUntil: now + leaseMs })
          .where(inArray(webhookOutbox.id, due.map((entry) => entry.id)));
        return due.map((entry) => ({ id: entry.id, batchId: entry.batchId, type: entry.type, batch: entry.batch, createdAt: entry.createdAt, attempts: entry.attempts }));
      });
    },

    async settleWebhook(id, owner, result, now = Date.now()) {
      const set = result.delivered
        ? { deliveredAt: now, lastError: null }
        : result.retryAt === null
          ? { abandonedAt: now, lastError: result.error }
          : { nextAttemptAt: result.retryAt, lastError: result.error };
      await db
        .update(webhookOutbox)
        .set({ ...set, attempts: sql`${webhookOutbox.attempts} + 1`, leaseOwner: null, leaseUntil: null })
        .where(and(eq(webhookOutbox.id, id), eq(webhookOutbox.leaseOwner, owner)));
    },

    async updateBatch(claim, patch: BatchPatch, events, now = Date.now()) {
      await write(claim.batchId, events, now, async (tx) => {
        const set = Object.keys(patch).length > 0 ? patch : { fence: claim.fence };
        mustChange(claim.batchId, (await tx.update(batches).set(set).where(fenced(claim))).rowCount);
      });
    },

    async updateRows(claim, rows, patch: RowPatch, events, now = Date.now()) {
      const work = async (tx: Tx) => {
        // Lock the batch (and prove the claim) first: a write of another process that holds
        // the same claim cannot exist (the fence), and this process's take turns (inTurn),
        // but a stale owner's must wait and then fail the fence here.
        await lockFenced(tx, claim);
        await tx.update(batchRows).set({ ...patch, updatedAt: now }).where(rowsOf(claim.batchId, rows));
      };
      await inTurn(claim.batchId, () => write(claim.batchId, events, now, work, recountOf(db, eq(batches.id, claim.batchId))));
    },

    /**
     * One statement, one round trip, whatever the commit carries (COMMIT_ROWS): it locks the
     * batch (proving the claim, reading the cancel flag), patches the rows, sets the counters
     * from the rows as they stood plus the patches, appends the events and announces them,
     * each part only if the claim holds. The counters are right because nothing else writes
     * this batch's rows meanwhile: another owner would first have raised the fence (so
     * nothing here applies), and this process's own writes of one batch take turns (inTurn).
     */
    async commitRows(claim, changes, events = [], now = Date.now()) {
      // One UPDATE changes a row once: a row changed twice in one commit gets its patches merged, in order.
      const merged = new Map<number, RowPatch>();
      for (const { row, patch } of changes) merged.set(row, { ...merged.get(row), ...patch });
      const { batchId, fence } = claim;
      const patches = JSON.stringify([...merged].map(([row, patch]) => ({ row, patch })));
      const values = [batchId, fence, patches, now, CREATED_ROWS, FAILED_ROWS, JSON.stringify(events), CHANNEL];
      // Named: each connection plans it once.
      const result = await inTurn(batchId, () => pool.query<{ fenced: boolean; cancel_requested: boolean | null }>({ name: 'commit_rows', text: COMMIT_ROWS, values }));
      const [outcome] = result.rows;
      if (!outcome?.fenced) throw new LeaseLostError(batchId);
      if (events.length > 0) changed.emit(batchId);
      return { cancelRequested: outcome.cancel_requested === true };
    },

    async editRow(batchId, rowNumber, values, now = Date.now()) {
      const result = await db.transaction(async (tx): Promise<RowEditResult> => {
        // The batch row locked, as claimBatch locks it: an edit and a resume's claim run one after the other.
        const [batch] = await tx.select({ status: batches.status }).from(batches).where(eq(batches.id, batchId)).for('update');
        const thisRow = and(eq(batchRows.batchId, batchId), eq(batchRows.row, rowNumber));
        const [current] = batch ? await tx.select({ status: batchRows.status }).from(batchRows).where(thisRow) : [];
        if (!batch || !current) return { kind: 'not_found' };
        if (!ROW_EDITABLE_BATCHES.includes(batch.status)) return { kind: 'batch_conflict', status: batch.status };
        const [edited] = await tx
          .update(batchRows)
          .set({ ...values, status: 'pending', errorMessage: null, rejected: false, updatedAt: now })
          .where(and(thisRow, inArray(batchRows.status, EDITABLE_ROWS)))
          .returning();
        if (!edited) return { kind: 'row_conflict', status: current.status };
        await recount(tx, eq(batches.id, batchId));
        await tx.insert(batchEvents).values({ batchId, type: 'row', data: editedRowEvent(edited), createdAt: now });
        await tx.execute(sql`select pg_notify(${CHANNEL}, ${batchId})`);
        return { kind: 'edited', row: edited };
      });
      if (result.kind === 'edited') changed.emit(batchId);
      return result;
    },

    async eventsAfter(batchId, seq) {
      const stored = await db
        .select()
        .from(batchEvents)
        .where(and(eq(batchEvents.batchId, batchId), gt(batchEvents.seq, seq)))
        .orderBy(asc(batchEvents.seq));
      return stored.map((row) => ({ seq: row.seq, batchId: row.batchId, event: row.data, createdAt: row.createdAt }));
    },

    watch(batchId, onChange) {
      changed.on(batchId, onChange);
      return () => changed.off(batchId, onChange);
    },

    async interruptOrphans({ leaseExpiredOnly, leaseMs }, now = Date.now()) {
      const orphaned = and(
        inArray(batches.status, RUNNING),
        leaseExpiredOnly ? or(lt(batches.leaseExpiresAt, now), and(isNull(batches.leaseOwner), lt(batches.createdAt, now - leaseMs))) : undefined,
      );
      // Polled every second without AUTO_RESUME: a plain read first, as in claimOrphan.
      if ((await db.select({ id: batches.id }).from(batches).where(orphaned).limit(1)).length === 0) return [];
      return db.transaction(async (tx) => {
        const orphans = (
          await tx
            .select({ id: batches.id })
            .from(batches)
            .where(orphaned)
            .for('update', { skipLocked: true })
        ).map((b) => b.id);
        if (orphans.length === 0) return [];
        await tx
          .update(batchRows)
          .set({ status: 'unknown', errorMessage: STOPPED_WHILE_SENDING, updatedAt: now })
          .where(and(inArray(batchRows.batchId, orphans), eq(batchRows.status, 'creating')));
        await recount(tx, inArray(batches.id, orphans));
        await tx
          .update(batches)
          .set({
            status: 'interrupted',
            leaseOwner: null,
            leaseExpiresAt: null,
            fence: sql`${batches.fence} + 1`,
            error: sql`'The service stopped while this batch was running. Resume it with POST /batches/' || ${batches.id} || '/resume.'`,
          })
          .where(inArray(batches.id, orphans));
        return orphans;
      });
    },

    // Idempotent, like the SQLite store's: pg's pool throws when ended twice.
    close() {
      return (closing ??= (async () => {
        changed.removeAllListeners();
        await listener.close();
        await pool.end();
      })());
    },
  };
}

/**
 * Runs the migrations once even when several instances start at the same moment (a deploy
 * of two): each waits for a session-level advisory lock on its own connection, and the
 * second finds nothing left to do.
 */
export async function migratePostgres(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('select pg_advisory_lock(7263542)');
    await migrate(drizzle(client), { migrationsFolder: migrationsFolder('postgres') });
  } finally {
    await client.end();
  }
}

/**
 * The reads every GET makes, as named prepared statements: drizzle builds each SQL text
 * once, and each pooled connection has PostgreSQL parse and plan it once, instead of on
 * every request (the read path's requests/s depend on it; see bench/RESULTS.md).
 */
function prepareReads(db: PgDb) {
  const newestFirst = [desc(batches.createdAt), desc(batches.id)];
  return {
    batch: db.select().from(batches).where(eq(batches.id, sql.placeholder('id'))).prepare('hb_find_batch'),
    rows: db.select().from(batchRows).where(eq(batchRows.batchId, sql.placeholder('batchId'))).orderBy(asc(batchRows.row)).prepare('hb_find_rows'),
    firstPage: db.select().from(batches).orderBy(...newestFirst).limit(sql.placeholder('limit')).prepare('hb_first_page'),
    olderPage: db
      .select()
      .from(batches)
      .where(sql`(${batches.createdAt}, ${batches.id}) < (${sql.placeholder('createdAt')}, ${sql.placeholder('id')})`)
      .orderBy(...newestFirst)
      .limit(sql.placeholder('limit'))
      .prepare('hb_older_page'),
  };
}
