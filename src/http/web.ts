import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router } from 'express';

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

// The same module runs from src/ (tsx, jest) and from dist/src/ (built): walk up to the
// folder holding dist/web instead of hard-coding the depth (as src/db/database.ts does).
function webFolder(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'dist', 'web');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}
