import { readFileSync } from 'node:fs';

// package.json sits at the repository root, one level above src/ and two above dist/src/.
const candidates = ['../package.json', '../../package.json'];

/** The service version from package.json, as /health reports it. */
export const version: string = (() => {
  for (const candidate of candidates) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'hospital-bulk' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return 'unknown';
})();
