import express from 'express';
import type { Deps } from './deps.js';
import { eventRoutes } from './http/events.js';
import { fileRoutes } from './http/files.js';
import { batchRoutes, bulkRoutes } from './http/routes.js';
import { errorHandler, notFound } from './http/problem.js';
import { requestLog } from './http/requestLog.js';
import { version } from './version.js';

/** Builds the HTTP app around its dependencies; never listens (src/server.ts does). */
export function createApp(deps: Deps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.config.NODE_ENV === 'production' ? 1 : false);
  app.use(requestLog(deps.logger));

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok', version });
  });
  app.use(fileRoutes(deps));
  app.use(bulkRoutes(deps));
  app.use(batchRoutes(deps));
  app.use(eventRoutes(deps));

  app.use(notFound);
  app.use(errorHandler(deps.logger, { maxUploadBytes: deps.config.MAX_UPLOAD_BYTES }));
  return app;
}
