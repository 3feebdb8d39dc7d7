import express from 'express';
import { apiKeys } from './config.js';
import type { Deps } from './deps.js';
import { eventRoutes } from './http/events.js';
import { fileRoutes } from './http/files.js';
import { buildOpenApiDocument, docsRoutes } from './http/openapi.js';
import { batchRoutes, bulkRoutes } from './http/routes.js';
import { countRefusals, opsRoutes } from './http/ops.js';
import { errorHandler, notFound } from './http/problem.js';
import type { Health } from './http/schemas.js';
import { requestLog } from './http/requestLog.js';
import { limitRate, requireApiKey, securityHeaders } from './http/security.js';
import { templateRoutes } from './http/templates.js';
import { webPage } from './http/web.js';
import { version } from './version.js';

/** Builds the HTTP app around its dependencies; never listens (src/server.ts does). */
export function createApp(deps: Deps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.config.NODE_ENV === 'production' ? 1 : false);
  app.use(requestLog(deps.logger));
  app.use(countRefusals(deps.metrics));
  app.use(securityHeaders());

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok', version, instance: deps.instanceId, database: deps.store.engine } satisfies Health);
  });
  // The API and /metrics need the key (when one is set); /health, /health/ready, /docs, /openapi.json and the page do not.
  app.use(['/hospitals', '/batches', '/metrics'], requireApiKey(apiKeys(deps.config)));
  app.use(opsRoutes(deps));
  // Writes share one budget (each spends the directory's create or delete quota); a dry run costs one read.
  // On PostgreSQL the counts are shared by every instance (deps.pacing).
  app.post(
    ['/hospitals/bulk', '/batches/:id/resume', '/batches/:id/rollback'],
    limitRate(deps.config.UPLOAD_RATE_PER_MIN, 'uploads, resumes and rollbacks', deps.pacing.clientLimitStore('uploads:')),
  );
  app.post('/hospitals/bulk/validate', limitRate(deps.config.VALIDATE_RATE_PER_MIN, 'dry runs', deps.pacing.clientLimitStore('validate:')));
  app.use(fileRoutes(deps));
  app.use(bulkRoutes(deps));
  app.use(batchRoutes(deps));
  app.use(eventRoutes(deps));
  // GET /openapi.json and GET /docs; the document is built here, once.
  app.use(docsRoutes(buildOpenApiDocument({ maxRows: deps.config.MAX_ROWS, maxUploadBytes: deps.config.MAX_UPLOAD_BYTES })));

  // The operations page at / (static files from dist/web), and the templates it offers.
  app.use(templateRoutes());
  app.use(webPage());

  app.use(notFound);
  app.use(errorHandler(deps.logger, { maxUploadBytes: deps.config.MAX_UPLOAD_BYTES }));
  return app;
}
