import { Router } from 'express';
import type { Deps } from '../deps.js';
import { toReport } from '../bulk/report.js';
import { findBatch, findRows } from '../db/queries.js';
import { AppError } from '../errors.js';
import { batchId } from './routes.js';

const FINISHED = new Set(['completed', 'failed', 'interrupted', 'rolled_back']);
const HEARTBEAT_MS = 15_000;

/**
 * GET /batches/:id/events — server-sent events: every recorded `row` and `batch` event
 * after Last-Event-ID (all of them for a new client), then live ones as they happen, and
 * once the batch has finished a final `report` event with the full report; then the
 * stream ends. A finished batch simply replays and ends.
 */
export function eventRoutes(deps: Deps): Router {
  const router = Router();
  router.get('/batches/:id/events', (req, res) => {
    const id = batchId(req.params.id);
    if (!findBatch(deps.db, id)) throw new AppError('not_found', `No batch with id ${id}.`);
    let last = Number.parseInt(req.get('last-event-id') ?? '0', 10) || 0;

    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      // The stream ends with the final `report`: close the connection with it, so a client
      // reading to EOF stops there and no idle socket is left behind.
      Connection: 'close',
      // Reverse proxies (Render's included) must not buffer the stream.
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 3000\n\n');

    let ended = false;
    const send = () => {
      if (ended) return;
      for (const event of deps.events.after(id, last)) {
        res.write(`id: ${event.seq}\nevent: ${event.type}\ndata: ${event.data}\n\n`);
        last = event.seq;
      }
      const batch = findBatch(deps.db, id);
      if (batch && FINISHED.has(batch.status)) {
        res.write(`id: ${last}\nevent: report\ndata: ${JSON.stringify(toReport(batch, findRows(deps.db, id)))}\n\n`);
        end();
      }
    };
    const unwatch = deps.events.watch(id, send);
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    const end = () => {
      ended = true;
      unwatch();
      clearInterval(heartbeat);
      res.end();
    };
    req.on('close', end);
    send();
  });
  return router;
}
