import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { and, asc, count, desc, eq, gt, inArray, isNull, lt, lte, or, sql, type SQL, type SQLWrapper } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import type { BatchEvent } from '../../bulk/events.js';
import { assertTransition, CANCELLABLE, CREATED_ROWS, EDITABLE_ROWS, FAILED_ROWS, ROW_EDITABLE_BATCHES, RUNNING, type BatchStatus } from '../../bulk/status.js';
import { migrationsFolder, readinessFrom } from '../migrations.js';
import {
  editedRowEvent,
  isAnnounced,
  LeaseLostError,
  STOPPED_WHILE_SENDING,
  type Admission,
  type AuditEntry,
  type BatchPatch,
  type CancelResult,
  type ClaimResult,
  type RowEditResult,
  type RowChange,
  type RowPatch,
  type Store,
} from '../store.js';
import { listen } from './listen.js';
import * as schema from './schema.js';
import { batchAudit, batchEvents, batchRows, batches, webhookOutbox } from './schema.js';

type PgDb = ReturnType<typeof drizzle<typeof schema>>;
type Tx = Parameters<Parameters<PgDb['transaction']>[0]>[0];

/** Wakes every instance's event streams: the payload is the batch id. */
const CHANNEL = 'hospital_bulk_events';
// Admission (MAX_ACTIVE_BATCHES, Idempotency-Key) is decided under one transaction-scoped
// advisory lock, so two instances cannot both count "room for one more".
const ADMISSION_LOCK = sql`select pg_advisory_xact_lock(7263541)`;
/** A batch's counters, counted from its rows (in an update of `batches`). */
const counted = (statuses: readonly string[]) =>
  sql<number>`(select count(*) from ${batchRows} where ${batchRows.batchId} = ${batches.id} and ${inArray(batchRows.status, [...statuses] as never[])})`;
const counters = { createdRows: counted(CREATED_ROWS), failedRows: counted(FAILED_ROWS) };
/** The rows `rows` names of a batch: all of them, or those numbered. */
const rowsOf = (batchId: string, rows: readonly number[] | 'all') =>
  rows === 'all' ? eq(batchRows.batchId, batchId) : and(eq(batchRows.batchId, batchId), inArray(batchRows.row, [...rows]));
/** Each field of a RowPatch as json_to_recordset reads it (patchRows). */
const PATCH_TYPES: Record<keyof RowPatch, string> = { status: 'text', hospitalId: 'integer', errorMessage: 'text', attempts: 'integer', rejected: 'boolean' };

/** Opens a pool on `url` (its sslmode honoured by pg), migrates, and serves the Store on it. */
export async function createPostgresStore(url: string, { migrate: run = true, outbox = false } = {}): Promise<Store> {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // An idle client that errors (the server restarted) must not crash the process.
  pool.on('error', () => undefined);
  const db = drizzle(pool, { schema });
  if (run) await migratePostgres(url);
  const changed = new EventEmitter().setMaxListeners(0);
  // A stream on this instance hears about batches other instances run.
  const listener = await listen(url, CHANNEL, (batchId) => changed.emit(batchId));

  /**
   * One transaction: `work`, then `events` stored and announced to every instance. `last`, a
   * data-modifying statement `work` would end with (a recount), shares a round trip with the
   * events: a row's outcome costs five round trips whatever it carries.
   */
  async function write<T>(batchId: string, events: BatchEvent[] | undefined, now: number, work: (tx: Tx) => Promise<T>, last?: { getSQL(): SQL }): Promise<T> {
    const announce = events !== undefined && events.length > 0;
    const result = await db.transaction(async (tx) => {
      const value = await work(tx);
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
  /** Locks the claim's batch (proving the claim) and says whether a cancel has been asked for. */
  const lockFenced = async (tx: Tx, claim: { batchId: string; fence: number }) => {
    const locked = await tx.select({ cancelRequestedAt: batches.cancelRequestedAt }).from(batches).where(fenced(claim)).for('update');
    if (locked.length !== 1) throw new LeaseLostError(claim.batchId);
    return { cancelRequested: locked[0]!.cancelRequestedAt !== null };
  };
  const running = async (tx: Tx | PgDb) =>
    (await tx.select({ n: count() }).from(batches).where(inArray(batches.status, RUNNING)))[0]?.n ?? 0;
  /** Sets the batch's counters from its rows (a statement; run it after the rows changed). */
  const recountOf = (tx: Tx | PgDb, where: SQL | undefined) => tx.update(batches).set(counters).where(where);
  const recount = async (tx: Tx, where: SQL | undefined) => (await recountOf(tx, where)).rowCount;
  /**
   * Rows' patches in as few statements as the patches have shapes (which fields they set):
   * 20 outcomes landing together are one statement, not 20 round trips.
   */
  const patchRows = async (tx: Tx, batchId: string, changes: readonly RowChange[], now: number) => {
    const distinct = new Set(changes.map((change) => change.row)).size === changes.length;
    const shapes = new Map<string, RowChange[]>();
    for (const change of changes) {
      // A row changed twice in one commit keeps its order: one statement per change.
      const shape = distinct ? Object.keys(change.patch).sort().join() : String(shapes.size);
      shapes.set(shape, [...(shapes.get(shape) ?? []), change]);
    }
    for (const group of shapes.values()) {
      const fields = Object.keys(group[0]!.patch) as (keyof RowPatch)[];
      if (group.length === 1 || fields.length === 0) {
        for (const { row, patch } of group) {
          await tx.update(batchRows).set({ ...patch, updatedAt: now }).where(and(eq(batchRows.batchId, batchId), eq(batchRows.row, row)));
        }
        continue;
      }
      const values = JSON.stringify(group.map(({ row, patch }) => ({ ...patch, row })));
      await tx.execute(sql`
        update ${batchRows} set ${sql.join(fields.map((field) => sql`${sql.identifier(batchRows[field].name)} = v.${sql.identifier(field)}`), sql`, `)},
          ${sql.identifier(batchRows.updatedAt.name)} = ${now}
        from json_to_recordset(${values}::json) as v("row" integer, ${sql.join(fields.map((field) => sql`${sql.identifier(field)} ${sql.raw(PATCH_TYPES[field])}`), sql`, `)})
        where ${batchRows.batchId} = ${batchId} and ${batchRows.row} = v."row"`);
    }
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

    async admitBatch(batch, limits, now = Date.now()): Promise<Admission> {
      return write(batch.id, undefined, now, async (tx) => {
        await tx.execute(ADMISSION_LOCK);
        if (batch.idempotencyKey !== null) {
          const [earlier] = await tx.select().from(batches).where(eq(batches.idempotencyKey, batch.idempotencyKey));
          if (earlier) return { kind: 'existing', batch: earlier };
        }
        if ((await running(tx)) >= limits.maxActive) return { kind: 'full' };
        const [inserted] = await tx
          .insert(batches)
          .values({
            id: batch.id,
            filename: batch.filename,
            fileSha256: batch.fileSha256,
            idempotencyKey: batch.idempotencyKey,
            notice: batch.notice ?? null,
            createdBy: batch.createdBy ?? null,
            status: 'pending',
            totalRows: batch.rows.length,
            createdAt: now,
          })
          .returning();
        await tx.insert(batchRows).values(batch.rows.map((row) => ({ ...row, batchId: batch.id, directoryBatchId: row.directoryBatchId ?? batch.id, status: 'pending' as const, updatedAt: now })));
        return { kind: 'new', batch: inserted! };
      });
    },

    async findBatch(id) {
      return (await reads.batch.execute({ id }))[0];
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

    async claimBatch(id, { from, owner, leaseMs, maxActive, audit }, now = Date.now()): Promise<ClaimResult> {
      assertTransition(from, 'processing');
      return write(id, undefined, now, async (tx): Promise<ClaimResult> => {
        if (maxActive !== undefined) await tx.execute(ADMISSION_LOCK);
        const [batch] = await tx.select().from(batches).where(eq(batches.id, id)).for('update');
        if (!batch) return { kind: 'not_found' };
        if (!from.includes(batch.status)) return { kind: 'conflict', status: batch.status };
        if (maxActive !== undefined && (await running(tx)) >= maxActive) return { kind: 'full' };
        const fence = batch.fence + 1;
        await tx
          .update(batches)
          .set({ status: 'processing', fence, leaseOwner: owner, leaseExpiresAt: now + leaseMs, cancelRequestedAt: null })
          .where(eq(batches.id, id));
        if (audit) await tx.insert(batchAudit).values({ batchId: id, ...audit, at: now });
        return { kind: 'claimed', claim: { batchId: id, fence, owner }, previous: batch };
      });
    },

    async claimOrphan({ owner, leaseMs }, now = Date.now()) {
      return db.transaction(async (tx) => {
        const orphaned = or(
          eq(batches.status, 'interrupted'),
          and(inArray(batches.status, RUNNING), or(lt(batches.leaseExpiresAt, now), and(isNull(batches.leaseOwner), lt(batches.createdAt, now - leaseMs)))),
        );
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

    async finishBatch(claim, to: BatchStatus, patch: BatchPatch, events, rows, now = Date.now()) {
      assertTransition(['processing'], to);
      await write(claim.batchId, events, now, async (tx) => {
        if (rows) {
          // Locked first, as in updateRows; the counters are then set from the rows in the update below.
          await lockFenced(tx, claim);
          await tx.update(batchRows).set({ ...rows.patch, updatedAt: now }).where(rowsOf(claim.batchId, rows.rows));
        }
        const result = await tx
          .update(batches)
          .set({ ...patch, ...(rows ? counters : {}), status: to, leaseOwner: null, leaseExpiresAt: null, cancelRequestedAt: null })
          .where(and(fenced(claim), eq(batches.status, 'processing')));
        mustChange(claim.batchId, result.rowCount);
        if (isAnnounced(to, events)) await enqueueWebhook(tx, claim.batchId, to, now);
      });
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
      await write(
        claim.batchId,
        events,
        now,
        async (tx) => {
          // Lock the batch (and prove the claim) first: concurrent row commits of one batch
          // then run one after another, and each recount, a new statement under READ
          // COMMITTED, sees the rows the previous one committed. Recounting without the lock
          // loses updates (two recounts from snapshots taken before either commit).
          await lockFenced(tx, claim);
          await tx.update(batchRows).set({ ...patch, updatedAt: now }).where(rowsOf(claim.batchId, rows));
        },
        recountOf(db, eq(batches.id, claim.batchId)),
      );
    },

    async commitRows(claim, changes, events, now = Date.now()) {
      return write(
        claim.batchId,
        events,
        now,
        async (tx) => {
          // Locked first, as in updateRows: concurrent commits of one batch recount in turn.
          const locked = await lockFenced(tx, claim);
          await patchRows(tx, claim.batchId, changes, now);
          return locked;
        },
        recountOf(db, eq(batches.id, claim.batchId)),
      );
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
      return db.transaction(async (tx) => {
        const orphaned = leaseExpiredOnly
          ? or(lt(batches.leaseExpiresAt, now), and(isNull(batches.leaseOwner), lt(batches.createdAt, now - leaseMs)))
          : undefined;
        const orphans = (
          await tx
            .select({ id: batches.id })
            .from(batches)
            .where(and(inArray(batches.status, RUNNING), orphaned))
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
