import { createHash, randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import { findBatchByIdempotencyKey, insertBatch, updateBatch } from '../db/queries.js';
import type { BatchRecord } from '../db/schema.js';
import { AppError } from '../errors.js';
import { readUpload } from './read.js';

export type Accepted = { kind: 'new'; batchId: string } | { kind: 'replay'; batch: BatchRecord };

/**
 * Validates an upload and records it as a pending batch with all its rows, before anything
 * is sent upstream. With an Idempotency-Key already seen for the same file, it returns that
 * batch instead (the directory receives nothing twice); for a different file, 422.
 * `assertRoomForBatch` runs after validation and before the insert, so a bad file still
 * hears what is wrong with it and a replay is never refused for lack of room.
 */
export function acceptUpload(
  db: Db,
  upload: { content: Buffer; filename: string; idempotencyKey: string | null; sheet?: string | null },
  limits: { maxRows: number; assertRoomForBatch: () => void },
): Accepted {
  const fileSha256 = createHash('sha256').update(upload.content).digest('hex');
  const earlier = upload.idempotencyKey ? findBatchByIdempotencyKey(db, upload.idempotencyKey) : undefined;
  if (earlier) {
    if (earlier.fileSha256 !== fileSha256) {
      throw new AppError(
        'idempotency_key_reused',
        `This Idempotency-Key was already used for a different file (batch ${earlier.id}). Use a new key for a new file.`,
        { batch_id: earlier.id },
      );
    }
    return { kind: 'replay', batch: earlier };
  }
  const { rows, notices } = readUpload(upload.content, { maxRows: limits.maxRows, sheet: upload.sheet ?? null });
  limits.assertRoomForBatch();
  const batchId = randomUUID();
  // better-sqlite3 is synchronous: nothing can slip in between the lookup above and this insert.
  insertBatch(db, {
    id: batchId,
    filename: upload.filename,
    fileSha256,
    idempotencyKey: upload.idempotencyKey,
    rows: rows.map(({ row, line, name, address, phone }) => ({ row, line, name, address, phone })),
  });
  // How the file was read ("read as Windows-1252") stays with the batch, for the report.
  if (notices.length > 0) updateBatch(db, batchId, { notice: notices.join(' ') });
  return { kind: 'new', batchId };
}
