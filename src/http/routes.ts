import { Router, type Request, type RequestHandler } from 'express';
import { z } from 'zod';
import type { Deps } from '../deps.js';
import { acceptUpload, readUpload } from '../bulk/accept.js';
import { processBatch, resumeBatch, rollbackBatch } from '../bulk/process.js';
import { toProgress, toReport, toSummary, type BatchReport } from '../bulk/report.js';
import { findBatch, findRows, listBatches } from '../db/queries.js';
import { AppError } from '../errors.js';
import { batchIdParam, idempotencyKey, listQuery, type AsyncAccepted, type BatchList } from './schemas.js';
import { limitActiveBatches } from './security.js';
import { displayName, receiveCsv } from './upload.js';

/** POST /hospitals/bulk: validate the CSV, record it, run it through the directory, report. */
export function bulkRoutes(deps: Deps): Router {
  const router = Router();
  // Checked and followed by lifecycle.track() in the same tick: concurrent uploads cannot both slip in.
  const assertRoomForBatch = limitActiveBatches(deps.config, () => deps.lifecycle.active);
  router.post('/hospitals/bulk', refuseWhileStopping(deps), ...receiveCsv(deps.config.MAX_UPLOAD_BYTES), async (req, res) => {
    const key = req.get('idempotency-key');
    const read = await readUpload(req.file!.buffer, { maxRows: deps.config.MAX_ROWS });
    const accepted = acceptUpload(
      deps.db,
      {
        content: req.file!.buffer,
        filename: displayName(req.file!.originalname),
        idempotencyKey: key === undefined ? null : parseOrThrow(idempotencyKey, key),
        read,
      },
      { assertRoomForBatch },
    );
    if (accepted.kind === 'replay') {
      const { batch } = accepted;
      res.setHeader('Idempotent-Replayed', 'true');
      if (batch.status === 'pending' || batch.status === 'processing') {
        res.location(`/batches/${batch.id}`);
        throw new AppError('conflict', `The upload with this Idempotency-Key is still being processed; follow /batches/${batch.id}.`, {
          batch_id: batch.id,
        });
      }
      res.json(toReport(batch, findRows(deps.db, batch.id)));
      return;
    }
    const id = accepted.batchId;
    deps.logger.info('batch accepted', { batch_id: id, request_id: res.locals.requestId });
    const processing = deps.lifecycle.track(processBatch(deps, id));
    if (!wantsAsync(req)) {
      res.json(await processing);
      return;
    }
    // The outcome is in the history either way; a failure here has already been recorded.
    processing.catch((error: unknown) => {
      if (!(error instanceof AppError)) deps.logger.error('batch crashed', { batch_id: id, error: String(error) });
    });
    const batch = findBatch(deps.db, id)!;
    res
      .status(202)
      .location(`/batches/${id}`)
      .setHeader('Preference-Applied', 'respond-async')
      .json({
        batch_id: id,
        status: batch.status,
        total_hospitals: batch.totalRows,
        links: { self: `/batches/${id}`, events: `/batches/${id}/events` },
      } satisfies AsyncAccepted);
  });
  return router;
}

/** The upload history, read from SQLite, and the actions on a batch. */
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
    } satisfies BatchList);
  });
  router.get('/batches/:id', (req, res) => {
    const id = batchId(req.params.id);
    const batch = findBatch(deps.db, id);
    if (!batch) throw new AppError('not_found', `No batch with id ${id}.`);
    const rows = findRows(deps.db, id);
    const running = batch.status === 'pending' || batch.status === 'processing';
    res.json({
      ...toReport(batch, rows),
      ...(running ? { progress: toProgress(batch, rows, deps.directory.estimatedCreateWaitMs) } : {}),
    } satisfies BatchReport);
  });
  const assertRoomForBatch = limitActiveBatches(deps.config, () => deps.lifecycle.active);
  router.post('/batches/:id/resume', refuseWhileStopping(deps), async (req, res) => {
    const id = batchId(req.params.id);
    assertRoomForBatch();
    res.json(await deps.lifecycle.track(resumeBatch(deps, id)));
  });
  router.post('/batches/:id/rollback', refuseWhileStopping(deps), async (req, res) => {
    res.json(await deps.lifecycle.track(rollbackBatch(deps, batchId(req.params.id))));
  });
  return router;
}

/** RFC 7240 `Prefer: respond-async`, or `?async=true` for clients that cannot set headers. */
function wantsAsync(req: Request): boolean {
  return req.query.async === 'true' || /(^|[\s,;])respond-async($|[\s,;])/i.test(req.get('prefer') ?? '');
}

/** During a shutdown no new work starts: the caller is told to come back. */
function refuseWhileStopping(deps: Deps): RequestHandler {
  return (_req, res, next) => {
    if (!deps.lifecycle.stopping) return next();
    throw new AppError('shutting_down', 'The service is restarting and takes no new work; send the request again in a minute.');
  };
}

export const batchId = (value: unknown) => parseOrThrow(batchIdParam, value).toLowerCase();

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
