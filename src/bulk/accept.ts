import { createHash, randomUUID } from 'node:crypto';
import type { BatchRecord, Claim, Store } from '../db/store.js';
import { AppError } from '../errors.js';
import { inDirectoryBatches } from './directoryBatches.js';
import { readUpload } from './read.js';
import { tooManyBatches } from './process.js';

/** A new upload, claimed for `limits.start`'s owner and started at `startedAt`; or the one its Idempotency-Key made. */
export type Accepted = { kind: 'new'; batch: BatchRecord; claim: Claim; startedAt: number } | { kind: 'replay'; batch: BatchRecord };

/**
 * Validates an upload and records it with all its rows, claimed for `limits.start`'s owner
 * and started (it runs at once), before anything is sent upstream. With an Idempotency-Key
 * already seen for the same file, it returns that batch instead (the directory receives
 * nothing twice); for a different file, 422.
 * The key's uniqueness and the MAX_ACTIVE_BATCHES room are decided by the store in the
 * transaction that inserts, so concurrent uploads (on any instance) cannot both slip in.
 */
export async function acceptUpload(
  store: Store,
  upload: { content: Buffer; filename: string; idempotencyKey: string | null; sheet?: string | null; createdBy?: string | null },
  limits: { maxRows: number; maxActive: number; start: { owner: string; leaseMs: number } },
): Promise<Accepted> {
  const fileSha256 = createHash('sha256').update(upload.content).digest('hex');
  // A replay must not be refused for a file problem or for lack of room: look first.
  const earlier = upload.idempotencyKey ? await store.findBatchByIdempotencyKey(upload.idempotencyKey) : undefined;
  if (earlier) return replay(earlier, fileSha256);
  const { rows, notices } = await readUpload(upload.content, { maxRows: limits.maxRows, sheet: upload.sheet ?? null });
  const id = randomUUID();
  const now = Date.now();
  const admission = await store.admitBatch(
    {
      id,
      filename: upload.filename,
      fileSha256,
      idempotencyKey: upload.idempotencyKey,
      createdBy: upload.createdBy ?? null,
      // How the file was read ("read as Windows-1252") stays with the batch, for the report.
      notice: notices.length > 0 ? notices.join(' ') : null,
      rows: inDirectoryBatches(id, rows.map(({ row, line, name, address, phone }) => ({ row, line, name, address, phone }))),
    },
    { maxActive: limits.maxActive, start: limits.start },
    now,
  );
  switch (admission.kind) {
    case 'new':
      // Asked with `start`, the store admits the batch claimed: it runs at once, here.
      if (!admission.claim) throw new Error(`Batch ${id} was admitted without its claim.`);
      return { kind: 'new', batch: admission.batch, claim: admission.claim, startedAt: now };
    case 'existing':
      return replay(admission.batch, fileSha256);
    case 'full':
      throw tooManyBatches(limits.maxActive);
  }
}

function replay(earlier: BatchRecord, fileSha256: string): Accepted {
  if (earlier.fileSha256 !== fileSha256) {
    throw new AppError(
      'idempotency_key_reused',
      `This Idempotency-Key was already used for a different file (batch ${earlier.id}). Use a new key for a new file.`,
      { batch_id: earlier.id },
    );
  }
  return { kind: 'replay', batch: earlier };
}
