/**
 * The writes on every upload's way, straight against the store of the project's engine:
 * the admission (Store.admitBatch: on PostgreSQL one statement under the admission lock),
 * the claim that starts the run, and the row commit every outcome goes through
 * (Store.commitRows: on PostgreSQL one statement: lock, patches, counters, events). On
 * SQLite each is one transaction; both engines must keep the same contract.
 */
import { randomUUID } from 'node:crypto';
import type { BatchEvent } from '../src/bulk/events.js';
import { openStore } from '../src/db/index.js';
import { LeaseLostError, type Claim, type Store } from '../src/db/store.js';
import { tempDir, testDatabase } from './helpers.js';

let store: Store;
/** The same database, opened as a service with WEBHOOK_URL set opens it: finishing a batch leaves its webhook in the outbox. */
let withOutbox: () => Promise<Store>;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  const dir = tempDir();
  const database = await testDatabase(dir.path);
  const env = { DATABASE_PATH: database.env.DATABASE_PATH!, DATABASE_URL: database.env.DATABASE_URL };
  store = await openStore(env);
  const others: Store[] = [];
  withOutbox = async () => {
    others.push(await openStore({ ...env, WEBHOOK_URL: 'http://127.0.0.1:9/hook' }));
    return others.at(-1)!;
  };
  cleanup = async () => {
    for (const other of others) await other.close();
    await store.close();
    await database.drop();
    dir.remove();
  };
});
afterEach(async () => cleanup());

/** A 4-row batch, claimed: its rows pending. */
async function claimedBatch(): Promise<Claim> {
  const id = randomUUID();
  const rows = [1, 2, 3, 4].map((row) => ({ row, line: row + 1, name: `Hospital ${row}`, address: `${row} Main St`, phone: null }));
  await store.admitBatch({ id, filename: 'h.csv', fileSha256: 'x', idempotencyKey: null, rows }, { maxActive: 5 });
  const claimed = await store.claimBatch(id, { from: ['pending'], owner: 'test', leaseMs: 60_000 });
  if (claimed.kind !== 'claimed') throw new Error(`not claimed: ${claimed.kind}`);
  return claimed.claim;
}

const rowEvent = (row: number): BatchEvent => ({ type: 'row', row, status: 'created', hospitalId: 100 + row, errorMessage: null, attempts: 1, progress: null });

describe('Store.commitRows', () => {
  test('when a commit carries outcomes of several shapes and two patches of one row, then each row ends as its patches in order say, the counters count them, and the events follow in order', async () => {
    const claim = await claimedBatch();
    await store.commitRows(claim, [1, 2, 3, 4].map((row) => ({ row, patch: { status: 'creating' } })));

    const result = await store.commitRows(
      claim,
      [
        { row: 1, patch: { status: 'created', hospitalId: 101, errorMessage: null, attempts: 1, rejected: false } },
        { row: 2, patch: { status: 'failed', errorMessage: 'Rejected by the directory (HTTP 422): phone', attempts: 1, rejected: true } },
        { row: 3, patch: { status: 'unknown', errorMessage: 'No answer', attempts: 3 } },
        { row: 3, patch: { status: 'created', hospitalId: 103, errorMessage: null } },
      ],
      [rowEvent(1), rowEvent(2), rowEvent(3)],
    );

    expect(result).toEqual({ cancelRequested: false });
    const rows = await store.findRows(claim.batchId);
    expect(rows.map(({ row, status, hospitalId, errorMessage, attempts, rejected }) => ({ row, status, hospitalId, errorMessage, attempts, rejected }))).toEqual([
      { row: 1, status: 'created', hospitalId: 101, errorMessage: null, attempts: 1, rejected: false },
      { row: 2, status: 'failed', hospitalId: null, errorMessage: 'Rejected by the directory (HTTP 422): phone', attempts: 1, rejected: true },
      { row: 3, status: 'created', hospitalId: 103, errorMessage: null, attempts: 3, rejected: false },
      { row: 4, status: 'creating', hospitalId: null, errorMessage: null, attempts: 0, rejected: false },
    ]);
    expect(await store.findBatch(claim.batchId)).toMatchObject({ createdRows: 2, failedRows: 1 });
    const events = await store.eventsAfter(claim.batchId, 0);
    expect(events.map((stored) => stored.event)).toEqual([rowEvent(1), rowEvent(2), rowEvent(3)]);
  });

  test('when a row goes from counted to not counted, then the counters drop', async () => {
    const claim = await claimedBatch();
    await store.commitRows(claim, [
      { row: 1, patch: { status: 'failed', errorMessage: 'x' } },
      { row: 2, patch: { status: 'created', hospitalId: 102 } },
    ]);

    await store.commitRows(claim, [{ row: 1, patch: { status: 'creating' } }]);

    expect(await store.findBatch(claim.batchId)).toMatchObject({ createdRows: 1, failedRows: 0 });
  });

  test('when a cancel has been asked for, then the commit says so', async () => {
    const claim = await claimedBatch();
    expect((await store.requestCancel(claim.batchId, null)).kind).toBe('requested');

    const result = await store.commitRows(claim, [{ row: 1, patch: { status: 'creating' } }]);

    expect(result).toEqual({ cancelRequested: true });
  });

  test('when another owner has raised the fence, then the commit throws LeaseLostError and changes nothing: no row, no counter, no event', async () => {
    const claim = await claimedBatch();
    await store.interruptOrphans({ leaseExpiredOnly: false, leaseMs: 60_000 }); // a restart's recovery: fence raised
    const before = await store.findBatch(claim.batchId);

    const commit = store.commitRows(claim, [{ row: 1, patch: { status: 'created', hospitalId: 101 } }], [rowEvent(1)]);

    await expect(commit).rejects.toBeInstanceOf(LeaseLostError);
    expect((await store.findRows(claim.batchId))[0]).toMatchObject({ status: 'pending', hospitalId: null });
    expect(await store.findBatch(claim.batchId)).toEqual(before);
    expect(await store.eventsAfter(claim.batchId, 0)).toEqual([]);
  });
});

describe('Store.admitBatch and a claim that starts the run', () => {
  const rows = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ row: i + 1, line: i + 2, name: `Hospital ${i + 1}`, address: `${i + 1} Main St`, phone: i % 2 ? null : `555-000${i}`, directoryBatchId: i < 20 ? undefined : 'second-part' }));

  test('when an upload is admitted, then it answers the batch exactly as it reads back, with every row pending in its directory batch', async () => {
    const id = randomUUID();
    const admitted = await store.admitBatch({ id, filename: 'h.csv', fileSha256: 'abc', idempotencyKey: 'key-1', notice: 'read as Windows-1252', createdBy: 'ops', rows: rows(21) }, { maxActive: 5 }, 1_700_000_000_123);

    expect(admitted.kind).toBe('new');
    expect(admitted).toEqual({ kind: 'new', batch: await store.findBatch(id) });
    expect((admitted as { batch: object }).batch).toMatchObject({ status: 'pending', totalRows: 21, createdRows: 0, fence: 0, createdAt: 1_700_000_000_123, idempotencyKey: 'key-1', createdBy: 'ops', activated: false, startedAt: null });
    const stored = await store.findRows(id);
    expect(stored.map(({ row, status, directoryBatchId, phone, updatedAt }) => ({ row, status, directoryBatchId, phone, updatedAt }))).toEqual(
      rows(21).map(({ row, directoryBatchId, phone }) => ({ row, status: 'pending', directoryBatchId: directoryBatchId ?? id, phone, updatedAt: 1_700_000_000_123 })),
    );
  });

  test('when the Idempotency-Key was used, or MAX_ACTIVE_BATCHES batches run, then nothing is added: the earlier batch, or full', async () => {
    const first = randomUUID();
    await store.admitBatch({ id: first, filename: 'h.csv', fileSha256: 'abc', idempotencyKey: 'key-2', rows: rows(2) }, { maxActive: 5 });

    const again = await store.admitBatch({ id: randomUUID(), filename: 'other.csv', fileSha256: 'def', idempotencyKey: 'key-2', rows: rows(3) }, { maxActive: 5 });
    const full = await store.admitBatch({ id: randomUUID(), filename: 'h.csv', fileSha256: 'abc', idempotencyKey: null, rows: rows(2) }, { maxActive: 1 });

    expect(again).toEqual({ kind: 'existing', batch: await store.findBatch(first) });
    expect(full).toEqual({ kind: 'full' });
    expect((await store.listBatches(10)).map((batch) => batch.id)).toEqual([first]);
  });

  test('when an upload is admitted to start at once, then it is recorded claimed and started, its stream says so once, and a refused one says nothing', async () => {
    const id = randomUUID();
    const start = { owner: 'instance-a', leaseMs: 30_000 };

    const admitted = await store.admitBatch({ id, filename: 'h.csv', fileSha256: 'abc', idempotencyKey: 'key-3', rows: rows(2) }, { maxActive: 5, start }, 1_700_000_000_789);
    const refused = await store.admitBatch({ id: randomUUID(), filename: 'h.csv', fileSha256: 'abc', idempotencyKey: null, rows: rows(2) }, { maxActive: 1, start });

    expect(admitted).toEqual({ kind: 'new', batch: await store.findBatch(id), claim: { batchId: id, fence: 1, owner: 'instance-a' } });
    expect(await store.findBatch(id)).toMatchObject({ status: 'processing', fence: 1, leaseOwner: 'instance-a', leaseExpiresAt: 1_700_000_030_789, startedAt: 1_700_000_000_789, completedAt: null });
    expect((await store.eventsAfter(id, 0)).map((stored) => stored.event)).toEqual([{ type: 'status', status: 'processing', error: null }]);
    expect(refused).toEqual({ kind: 'full' });
    expect((await store.listBatches(10)).map((batch) => batch.id)).toEqual([id]);
    // Its claim holds: a row commit under it is stored.
    await store.commitRows({ batchId: id, fence: 1, owner: 'instance-a' }, [{ row: 1, patch: { status: 'creating' } }]);
    expect((await store.findRows(id))[0]!.status).toBe('creating');
  });

  test('when a claim starts the run, then the batch is processing, started then, and its stream says so once; a claim that fails says nothing', async () => {
    const id = randomUUID();
    await store.admitBatch({ id, filename: 'h.csv', fileSha256: 'abc', idempotencyKey: null, rows: rows(2) }, { maxActive: 5 });

    const claimed = await store.claimBatch(id, { from: ['pending'], owner: 'test', leaseMs: 60_000, start: true }, 1_700_000_000_456);
    const refused = await store.claimBatch(id, { from: ['pending'], owner: 'test', leaseMs: 60_000, start: true });

    expect(claimed).toMatchObject({ kind: 'claimed', claim: { batchId: id, fence: 1, owner: 'test' } });
    expect(refused).toEqual({ kind: 'conflict', status: 'processing' });
    expect(await store.findBatch(id)).toMatchObject({ status: 'processing', startedAt: 1_700_000_000_456, error: null, completedAt: null, leaseOwner: 'test' });
    expect((await store.eventsAfter(id, 0)).map((stored) => stored.event)).toEqual([{ type: 'status', status: 'processing', error: null }]);
  });
});

describe('Store.findReport', () => {
  test('when a finished batch is read for its report, then it is the batch, its rows in order and its audit exactly as findBatch, findRows and findAudit read them', async () => {
    const claim = await claimedBatch();
    await store.commitRows(claim, [
      { row: 1, patch: { status: 'created', hospitalId: 2_000_000_001, attempts: 2 } },
      { row: 2, patch: { status: 'failed', errorMessage: 'Rejected by the directory (HTTP 422): phone «x»', attempts: 1, rejected: true } },
      { row: 3, patch: { status: 'unknown', errorMessage: 'No answer' } },
    ]);
    await store.appendAudit(claim.batchId, { action: 'cancel', by: 'carol' }, 1_700_000_000_001);
    await store.appendAudit(claim.batchId, { action: 'resume', by: null }, 1_700_000_000_002);
    await store.finishBatch(claim, 'failed', { error: 'Row 2 was refused', completedAt: 1_700_000_009_999, processingMs: 4321 });

    const found = await store.findReport(claim.batchId);

    expect(found).toEqual({ batch: await store.findBatch(claim.batchId), rows: await store.findRows(claim.batchId), audit: await store.findAudit(claim.batchId) });
    expect(found!.batch).toMatchObject({ status: 'failed', createdRows: 1, failedRows: 2, activated: false, processingMs: 4321, leaseOwner: null });
    expect(found!.rows.map((row) => [row.row, row.status, row.hospitalId, row.rejected])).toEqual([
      [1, 'created', 2_000_000_001, false],
      [2, 'failed', null, true],
      [3, 'unknown', null, false],
      [4, 'pending', null, false],
    ]);
    expect(found!.audit).toEqual([
      { action: 'cancel', by: 'carol', at: 1_700_000_000_001 },
      { action: 'resume', by: null, at: 1_700_000_000_002 },
    ]);
  });

  test('when the batch has no rows edited and no audit, then the audit is empty; when there is no such batch, then undefined', async () => {
    const claim = await claimedBatch();

    expect((await store.findReport(claim.batchId))!.audit).toEqual([]);
    expect(await store.findReport(randomUUID())).toBeUndefined();
  });
});

describe('Store.finishBatch', () => {
  const T = 1_700_000_005_000;

  test('when a run finishes activated, then its status, fields, rows, counters, events and webhook are stored together, and its lease and cancel request are cleared', async () => {
    const outboxStore = await withOutbox();
    const claim = await claimedBatch();
    await store.commitRows(claim, [1, 2, 3, 4].map((row) => ({ row, patch: { status: 'created', hospitalId: 100 + row, attempts: 1 } })));
    expect((await store.requestCancel(claim.batchId, null)).kind).toBe('requested');
    const events: BatchEvent[] = [{ type: 'activated' }, { type: 'status', status: 'completed', error: null }];

    await outboxStore.finishBatch(claim, 'completed', { error: null, completedAt: T, processingMs: 1234, activated: true }, events, { rows: 'all', patch: { status: 'created_and_activated' } }, T);

    const found = (await store.findReport(claim.batchId))!;
    expect(found.batch).toMatchObject({ status: 'completed', activated: true, createdRows: 4, failedRows: 0, error: null, completedAt: T, processingMs: 1234, leaseOwner: null, leaseExpiresAt: null, cancelRequestedAt: null, fence: claim.fence });
    expect(found.rows.map(({ row, status, hospitalId, attempts, updatedAt }) => ({ row, status, hospitalId, attempts, updatedAt }))).toEqual(
      [1, 2, 3, 4].map((row) => ({ row, status: 'created_and_activated', hospitalId: 100 + row, attempts: 1, updatedAt: T })),
    );
    expect((await store.eventsAfter(claim.batchId, 0)).map((stored) => stored.event).slice(-2)).toEqual(events);
    expect(await outboxStore.claimWebhooks({ owner: 'probe', leaseMs: 1000, limit: 10 }, T)).toEqual([
      { id: expect.any(String), batchId: claim.batchId, type: 'batch.completed', batch: found.batch, createdAt: T, attempts: 0 },
    ]);
  });

  test('when some rows change as a run fails, then the others keep theirs and the counters count both; a second finish under that claim throws LeaseLostError and changes nothing', async () => {
    const claim = await claimedBatch();
    await store.commitRows(claim, [
      { row: 1, patch: { status: 'created', hospitalId: 101 } },
      { row: 2, patch: { status: 'creating' } },
    ]);

    await store.finishBatch(claim, 'failed', { error: 'Stopped', completedAt: T, processingMs: 50 }, [{ type: 'status', status: 'failed', error: 'Stopped' }], { rows: [2], patch: { status: 'unknown', errorMessage: 'No answer' } }, T);
    const after = await store.findReport(claim.batchId);
    const again = store.finishBatch(claim, 'completed', { activated: true }, [{ type: 'status', status: 'completed', error: null }], { rows: 'all', patch: { status: 'created_and_activated' } });

    expect(after!.batch).toMatchObject({ status: 'failed', error: 'Stopped', createdRows: 1, failedRows: 1, activated: false, leaseOwner: null });
    expect(after!.rows.map(({ row, status, errorMessage }) => ({ row, status, errorMessage }))).toEqual([
      { row: 1, status: 'created', errorMessage: null },
      { row: 2, status: 'unknown', errorMessage: 'No answer' },
      { row: 3, status: 'pending', errorMessage: null },
      { row: 4, status: 'pending', errorMessage: null },
    ]);
    await expect(again).rejects.toBeInstanceOf(LeaseLostError);
    expect(await store.findReport(claim.batchId)).toEqual(after);
    expect((await store.eventsAfter(claim.batchId, 0)).map((stored) => stored.event)).toEqual([{ type: 'status', status: 'failed', error: 'Stopped' }]);
  });
});
