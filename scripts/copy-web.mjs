// Part of `npm run build`: copies the page's static files (web/*.html, *.css) next to the
// modules tsc -p tsconfig.web.json compiled into dist/web.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const from = join(root, 'web');
const to = join(root, 'dist', 'web');
const STATIC = new Set(['.html', '.css', '.svg', '.png', '.ico']);

mkdirSync(to, { recursive: true });
const copied = readdirSync(from).filter((name) => STATIC.has(extname(name)));
for (const name of copied) copyFileSync(join(from, name), join(to, name));
if (!copied.includes('index.html')) throw new Error(`web/index.html is missing: nothing to serve at /`);
