import { createHash, randomUUID } from 'node:crypto';
import { Router } from 'express';
import { z } from 'zod';
import type { Deps } from '../deps.js';
import { readHospitalsCsv } from '../bulk/csv.js';
import { processBatch } from '../bulk/process.js';
import { toReport, toSummary } from '../bulk/report.js';
import { findBatch, findRows, insertBatch, listBatches } from '../db/queries.js';
import { AppError } from '../errors.js';
import { displayName, receiveCsv } from './upload.js';

const batchIdParam = z.uuid({ error: 'The batch id must be a UUID.' });
const listQuery = z.object({
  limit: z.coerce
    .number({ error: 'limit must be a whole number from 1 to 200' })
    .int({ error: 'limit must be a whole number from 1 to 200' })
    .min(1, { error: 'limit must be a whole number from 1 to 200' })
    .max(200, { error: 'limit must be a whole number from 1 to 200' })
    .default(50),
  cursor: z.string().optional(),
});

/** POST /hospitals/bulk: validate the CSV, record it, run it through the directory, report. */
export function bulkRoutes(deps: Deps): Router {
  const router = Router();
  router.post('/hospitals/bulk', ...receiveCsv(deps.config.MAX_UPLOAD_BYTES), async (req, res) => {
    const file = req.file!;
    const rows = readHospitalsCsv(file.buffer, { maxRows: deps.config.MAX_ROWS });
    const batchId = randomUUID();
    insertBatch(deps.db, {
      id: batchId,
      filename: displayName(file.originalname),
      fileSha256: createHash('sha256').update(file.buffer).digest('hex'),
      rows: rows.map(({ row, line, name, address, phone }) => ({ row, line, name, address, phone })),
    });
    deps.logger.info('batch accepted', { batch_id: batchId, rows: rows.length, request_id: res.locals.requestId });
    res.json(await processBatch(deps, batchId));
  });
  return router;
}

/** The upload history, read from SQLite. */
export function batchRoutes(deps: Deps): Router {
  const router = Router();
  router.get('/batches', (req, res) => {
    const query = parseOrThrow(listQuery, req.query);
    const page = listBatches(deps.db, query.limit + 1, query.cursor ? decodeCursor(query.cursor) : undefined);
    const more = page.length > query.limit;
    const shown = more ? page.slice(0, query.limit) : page;
    const last = shown.at(-1);
    res.json({
      batches: shown.map(toSummary),
      next_cursor: more && last ? encodeCursor(last.createdAt, last.id) : null,
    });
  });
  router.get('/batches/:id', (req, res) => {
    const id = parseOrThrow(batchIdParam, req.params.id).toLowerCase();
    const batch = findBatch(deps.db, id);
    if (!batch) throw new AppError('not_found', `No batch with id ${id}.`);
    res.json(toReport(batch, findRows(deps.db, id)));
  });
  return router;
}

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new AppError('bad_request', parsed.error.issues.map((issue) => issue.message).join('; '));
  return parsed.data;
}

function encodeCursor(createdAt: number, id: string): string {
  return Buffer.from(`${createdAt}:${id}`).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: number; id: string } {
  const [createdAt, id] = Buffer.from(cursor, 'base64url').toString().split(':');
  if (!createdAt || !/^\d+$/.test(createdAt) || !id || !batchIdParam.safeParse(id).success) {
    throw new AppError('bad_request', 'cursor is not one this service gave out: pass next_cursor from the previous page.');
  }
  return { createdAt: Number(createdAt), id };
}
