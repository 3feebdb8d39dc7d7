import { Router } from 'express';
import type { Deps } from '../deps.js';
import { dryRun } from '../bulk/dryRun.js';
import { resultsFilename, toResultsCsv } from '../bulk/resultsCsv.js';
import { AppError } from '../errors.js';
import { batchId } from './routes.js';
import { receiveCsv, sheetField } from './upload.js';

/** The dry run of an upload, and a batch's results as a CSV download. */
export function fileRoutes(deps: Deps): Router {
  const router = Router();
  router.post('/hospitals/bulk/validate', ...receiveCsv(deps.config.MAX_UPLOAD_BYTES), async (req, res) => {
    res.json(await dryRun(deps, req.file!.buffer, sheetField(req.body)));
  });
  router.get('/batches/:id/results.csv', async (req, res) => {
    const id = batchId(req.params.id);
    const found = await deps.store.findReport(id);
    if (!found) throw new AppError('not_found', `No batch with id ${id}.`);
    const { batch, rows } = found;
    const filename = resultsFilename(batch);
    // The ASCII fallback keeps old clients working; filename* carries the real (UTF-8) name.
    const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
    res
      .type('text/csv; charset=utf-8')
      .setHeader('Content-Disposition', `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`)
      .send(toResultsCsv(rows));
  });
  return router;
}
