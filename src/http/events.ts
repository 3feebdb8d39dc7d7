import { Router } from 'express';
import type { Deps } from '../deps.js';
import { isFinished } from '../bulk/status.js';
import { AppError } from '../errors.js';
import { toReport, toServerSentEvent } from './presenter.js';
import { batchId } from './routes.js';

const HEARTBEAT_MS = 15_000;

/**
 * GET /batches/:id/events — server-sent events: every recorded `row`, `batch` and `directory` event
 * after Last-Event-ID (all of them for a new client), then live ones as they happen, and
 * once the batch has finished a final `report` event with the full report; then the
 * stream ends. A finished batch simply replays and ends.
 */
export function eventRoutes(deps: Deps): Router {
  const router = Router();
  router.get('/batches/:id/events', async (req, res) => {
    const id = batchId(req.params.id);
    if (!(await deps.store.findBatch(id))) throw new AppError('not_found', `No batch with id ${id}.`);
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
    // One read at a time, in order: a wake-up during a read is served by one more read after it.
    let reading: Promise<void> | null = null;
    let again = false;
    const readNew = async () => {
      // The status first, then the events: a batch's final status and its last event commit
      // together, so events read after a finished status include the last one. (Read the
      // other way round, a finish committing in between left the stream without it.)
      const batch = await deps.store.findBatch(id);
      for (const stored of await deps.store.eventsAfter(id, last)) {
        const { name, data } = toServerSentEvent(stored.event);
        if (ended) return;
        res.write(`id: ${stored.seq}\nevent: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
        last = stored.seq;
      }
      if (!ended && batch && isFinished(batch.status)) {
        const final = (await deps.store.findReport(id))!;
        res.write(`id: ${last}\nevent: report\ndata: ${JSON.stringify(toReport(final.batch, final.rows, undefined, final.audit))}\n\n`);
        end();
      }
    };
    const send = () => {
      if (ended) return;
      if (reading) {
        again = true;
        return;
      }
      reading = readNew()
        .catch((error: unknown) => {
          deps.logger.error('event stream read failed', { batch_id: id, error: String(error) });
          end();
        })
        .finally(() => {
          reading = null;
          if (again) {
            again = false;
            send();
          }
        });
    };
    const unwatch = deps.store.watch(id, send);
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
