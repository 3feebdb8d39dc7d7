import { Router, type RequestHandler } from 'express';
import type { Deps } from '../deps.js';
import type { ErrorCode } from '../errors.js';
import type { Metrics } from '../ops/metrics.js';
import type { NotReady, Readiness } from './schemas.js';

/**
 * GET /health/ready for load balancers (no key: it says nothing about batches) and
 * GET /metrics for Prometheus (mounted behind the API key by src/app.ts).
 */
export function opsRoutes(deps: Deps): Router {
  const router = Router();
  router.get('/health/ready', async (_req, res) => {
    const database = await deps.store.checkReady();
    const stopping = deps.lifecycle.stopping;
    const { directory } = deps.metrics;
    const answer = {
      instance: deps.instanceId,
      database: { engine: deps.store.engine, ready: database.ready, detail: database.ready ? null : database.reason },
      shutting_down: stopping,
      directory: {
        state: directory.state,
        last_status: directory.lastStatus,
        last_answer_at: directory.lastAnswerAt === null ? null : new Date(directory.lastAnswerAt).toISOString(),
      },
    };
    if (database.ready && !stopping) {
      res.json({ status: 'ready', ...answer } satisfies Readiness);
      return;
    }
    const detail = stopping ? 'The instance is shutting down.' : database.ready ? '' : database.reason;
    res
      .status(503)
      .type('application/problem+json')
      .json({ type: 'urn:hospital-bulk:problem:not_ready', title: 'Not ready', status: 503, detail, ...answer } satisfies NotReady);
  });
  router.get('/metrics', async (_req, res) => {
    const text = await deps.metrics.registry.metrics();
    res.type(deps.metrics.registry.contentType).send(text);
  });
  return router;
}

/** Failures of ours or of the directory are not refusals; every other problem answer is, by its code. */
const NOT_REFUSALS = new Set<ErrorCode>(['internal', 'directory_unavailable']);

/** Counts every problem answer this instance gives as `hospital_bulk_requests_refused_total{reason}`. */
export function countRefusals(metrics: Metrics): RequestHandler {
  return (_req, res, next) => {
    res.on('finish', () => {
      const code = res.locals.problemCode as ErrorCode | undefined;
      if (code !== undefined && !NOT_REFUSALS.has(code)) metrics.refused(code);
    });
    next();
  };
}
