import express, { Router, type Request, type RequestHandler } from 'express';
import { z } from 'zod';
import type { Deps } from '../deps.js';
import { acceptUpload } from '../bulk/accept.js';
import { editRow } from '../bulk/editRow.js';
import { cancelBatch } from '../bulk/cancel.js';
import { callerName } from './security.js';
import { processBatch, resumeBatch, rollbackBatch, type BatchOutcome } from '../bulk/process.js';
import { progressOf } from '../bulk/progress.js';
import { isRunning } from '../bulk/status.js';
import { AppError } from '../errors.js';
import { toReport, toSummary, type BatchReport } from './presenter.js';
import { batchIdParam, idempotencyKey, listQuery, rowParam, RowEditSchema, type AsyncAccepted, type BatchList } from './schemas.js';
import { displayName, receiveCsv, sheetField } from './upload.js';

/** POST /hospitals/bulk: validate the CSV, record it, run it through the directory, report. */
export function bulkRoutes(deps: Deps): Router {
  const router = Router();
  // Checked again once the file is in: one still arriving when the stop began is refused before anything is recorded.
  router.post('/hospitals/bulk', refuseWhileStopping(deps), ...receiveCsv(deps.config.MAX_UPLOAD_BYTES), refuseWhileStopping(deps), async (req, res) => {
    const key = req.get('idempotency-key');
    const accepted = await acceptUpload(
      deps.store,
      {
        content: req.file!.buffer,
        filename: displayName(req.file!.originalname),
        idempotencyKey: key === undefined ? null : parseOrThrow(idempotencyKey, key),
        sheet: sheetField(req.body),
        createdBy: callerName(res),
      },
      // Claimed and started for this instance as it is recorded: it runs at once.
      { maxRows: deps.config.MAX_ROWS, maxActive: deps.config.MAX_ACTIVE_BATCHES, start: { owner: deps.instanceId, leaseMs: deps.config.BATCH_LEASE_MS } },
    );
    if (accepted.kind === 'replay') {
      const { batch } = accepted;
      res.setHeader('Idempotent-Replayed', 'true');
      if (isRunning(batch.status)) {
        res.location(`/batches/${batch.id}`);
        throw new AppError('conflict', `The upload with this Idempotency-Key is still being processed; follow /batches/${batch.id}.`, {
          batch_id: batch.id,
        });
      }
      res.json(await currentReport(deps, batch.id));
      return;
    }
    const { batch } = accepted;
    const id = batch.id;
    deps.logger.info('batch accepted', { batch_id: id, request_id: res.locals.requestId });
    const processing = deps.lifecycle.track(processBatch(deps, accepted.claim, accepted.startedAt));
    if (!wantsAsync(req)) {
      res.json(report(deps, await processing));
      return;
    }
    // The outcome is in the history either way; a failure here has already been recorded.
    processing.catch((error: unknown) => {
      if (!(error instanceof AppError)) deps.logger.error('batch crashed', { batch_id: id, error: String(error) });
    });
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

/** The upload history and the actions on a batch. */
export function batchRoutes(deps: Deps): Router {
  const router = Router();
  router.get('/batches', async (req, res) => {
    const query = parseOrThrow(listQuery, req.query);
    const page = await deps.store.listBatches(query.limit + 1, query.cursor ? decodeCursor(query.cursor) : undefined);
    const more = page.length > query.limit;
    const shown = more ? page.slice(0, query.limit) : page;
    const last = shown.at(-1);
    res.json({
      batches: shown.map(toSummary),
      next_cursor: more && last ? encodeCursor(last.createdAt, last.id) : null,
    } satisfies BatchList);
  });
  router.get('/batches/:id', async (req, res) => {
    res.json(await currentReport(deps, batchId(req.params.id)));
  });
  router.post('/batches/:id/resume', refuseWhileStopping(deps), async (req, res) => {
    res.json(report(deps, await deps.lifecycle.track(resumeBatch(deps, batchId(req.params.id), callerName(res)))));
  });
  router.post('/batches/:id/rollback', refuseWhileStopping(deps), async (req, res) => {
    res.json(report(deps, await deps.lifecycle.track(rollbackBatch(deps, batchId(req.params.id), callerName(res)))));
  });
  // Answers at once: 200 when a queued batch is cancelled, 202 when its owner (on any instance) stops it after the row in flight.
  router.post('/batches/:id/cancel', async (req, res) => {
    const id = batchId(req.params.id);
    const { stopping } = await cancelBatch(deps.store, id, callerName(res));
    if (stopping) res.status(202).location(`/batches/${id}`);
    res.json(await currentReport(deps, id));
  });
  // Fix and finish: correct a row that was not created, then resume the batch.
  router.patch('/batches/:id/rows/:row', express.json({ limit: ROW_EDIT_BYTES }), async (req, res) => {
    const id = batchId(req.params.id);
    const row = parseOrThrow(rowParam, req.params.row);
    if (!req.is('application/json')) {
      throw new AppError('unsupported_media_type', 'Send the new values as JSON (Content-Type: application/json), e.g. {"address": "12 Harbour Road"}.');
    }
    res.json(report(deps, await editRow(deps, id, row, parseOrThrow(RowEditSchema, req.body), callerName(res))));
  });
  return router;
}

/** The report with its audit trail (and, while it runs, its progress). */
function report(deps: Deps, { batch, rows, audit }: BatchOutcome): BatchReport {
  const progress = isRunning(batch.status) ? progressOf(batch, rows, deps.directory.estimatedCreateWaitMs) : undefined;
  return toReport(batch, rows, progress, audit);
}

/** The report of the batch as it stands now, read in one snapshot. */
async function currentReport(deps: Deps, id: string): Promise<BatchReport> {
  const found = await deps.store.findReport(id);
  if (!found) throw new AppError('not_found', `No batch with id ${id}.`);
  return report(deps, found);
}

/** Three values of at most 255 characters, even each written as \uXXXX escapes, with room to spare. */
const ROW_EDIT_BYTES = '16kb';

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
