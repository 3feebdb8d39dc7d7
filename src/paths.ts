import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository's own files (migrations/, dist/web/, package.json) from code that runs
 * both from src/ (tsx, jest) and from dist/src/ (built): the nearest folder above this
 * module that holds `marker`, joined with it; null if there is none.
 */
export function findUp(marker: string): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, marker);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}
