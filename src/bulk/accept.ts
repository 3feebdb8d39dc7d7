import { createHash, randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import { findBatchByIdempotencyKey, insertBatch } from '../db/queries.js';
import type { BatchRecord } from '../db/schema.js';
import { AppError } from '../errors.js';
import { readHospitalsCsv, type HospitalRow } from './csv.js';

export type Accepted = { kind: 'new'; batchId: string } | { kind: 'replay'; batch: BatchRecord };

/** An uploaded file as read, or why it cannot be: the verdict waits for acceptUpload. */
export type UploadRead = { rows: HospitalRow[] } | { error: unknown };

/**
 * Reads the file before acceptUpload: the read yields to the event loop, and acceptUpload
 * must not, so that its lookup, room check and insert, and the caller's track(), share a tick.
 */
export function readUpload(content: Buffer, limits: { maxRows: number }): Promise<UploadRead> {
  return readHospitalsCsv(content, limits).then(
    (rows) => ({ rows }),
    (error: unknown) => ({ error }),
  );
}

/**
 * Validates an upload and records it as a pending batch with all its rows, before anything
 * is sent upstream. With an Idempotency-Key already seen for the same file, it returns that
 * batch instead (the directory receives nothing twice); for a different file, 422.
 * `assertRoomForBatch` runs after validation and before the insert, so a bad file still
 * hears what is wrong with it and a replay is never refused for lack of room.
 */
export function acceptUpload(
  db: Db,
  upload: { content: Buffer; filename: string; idempotencyKey: string | null; read: UploadRead },
  limits: { assertRoomForBatch: () => void },
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
  if ('error' in upload.read) throw upload.read.error;
  const { rows } = upload.read;
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
  return { kind: 'new', batchId };
}
