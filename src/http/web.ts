import { dirname } from 'node:path';
import express, { Router } from 'express';
import { findUp } from '../paths.js';

/**
 * The operations page at `/`: the static files `npm run build` puts in dist/web (compiled
 * from web/). Without them `/` says how to build them instead of a bare 404.
 */
export function webPage(folder = webFolder()): Router {
  const router = Router();
  if (folder === null) {
    router.get('/', (_req, res) => {
      res.type('text/plain').send('The web page is not built yet: run `npm run build`, then reload this page. The API works without it.\n');
    });
    return router;
  }
  router.use(
    express.static(folder, {
      index: 'index.html',
      // The page's modules import each other: after a deploy, revalidate so old and new never mix.
      setHeaders: (res) => res.setHeader('Cache-Control', 'no-cache'),
    }),
  );
  return router;
}

function webFolder(): string | null {
  const index = findUp('dist/web/index.html');
  return index === null ? null : dirname(index);
}
