import { readFileSync } from 'node:fs';
import { findUp } from './paths.js';

/** The service version from package.json, as /health reports it. */
export const version: string = (() => {
  const path = findUp('package.json');
  if (path === null) return 'unknown';
  const pkg = JSON.parse(readFileSync(path, 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
})();
