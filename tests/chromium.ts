/**
 * The browser the browser tests drive: Debian's Chromium when it is installed, otherwise the
 * one the npm package @sparticuz/chromium ships (a devDependency), so `npm ci && npm test`
 * needs nothing but Node and npm. That build links only libc, libexpat and libgcc, which
 * every Debian has.
 */
import { accessSync, constants, createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createBrotliDecompress } from 'node:zlib';
import { chromium, type Browser } from 'playwright-core';

const DEBIAN_CHROMIUM = '/usr/bin/chromium';

// As root on a machine whose network is closed: without the background-networking flags
// Chromium keeps trying to reach Google's hosts.
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--headless=new'];

// @sparticuz/chromium's own flags (its `args`) are made for AWS Lambda and are not used:
// --single-process lets a browser hold one context only (the tests open one per test);
// --disable-web-security and --allow-running-insecure-content switch off the same-origin
// policy and mixed-content blocking that the CSP tests check; --in-process-gpu crashes
// the browser unless the package's SwiftShader libraries are unpacked beside it; and its
// --disable-features replaces Playwright's own list. The flags above are all it needs here.

export interface LaunchedBrowser {
  browser: Browser;
  /** Which Chromium this is, for the test log. */
  source: string;
}

/** Launches headless Chromium: Debian's when present, otherwise the npm package's. */
export async function launchChromium(): Promise<LaunchedBrowser> {
  if (isExecutableFile(DEBIAN_CHROMIUM)) {
    const browser = await chromium.launch({ executablePath: DEBIAN_CHROMIUM, args: ARGS });
    return { browser, source: `Debian's Chromium (${DEBIAN_CHROMIUM})` };
  }
  const executable = await bundledChromium();
  const browser = await chromium.launch({ executablePath: executable, args: ARGS });
  return { browser, source: `@sparticuz/chromium ${packageVersion()} (${executable})` };
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

const require = createRequire(import.meta.url);
// The package exports only its entry point (build/cjs/index.cjs): its root is two levels up.
const packageRoot = () => join(dirname(require.resolve('@sparticuz/chromium')), '..', '..');
const packageVersion = () => (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;

/**
 * Unpacks the package's Brotli-compressed Chromium once per version into the temp dir. Not
 * through the package's executablePath(): that writes /tmp/chromium in place, so a run
 * stopped halfway (a timeout, Ctrl-C) would leave a truncated binary that every later run
 * takes as ready. Here it is unpacked beside its place and renamed into it when whole.
 */
async function bundledChromium(): Promise<string> {
  const home = join(tmpdir(), `hospital-bulk-chromium-${packageVersion()}`);
  const executable = join(home, 'chromium');
  if (existsSync(executable)) return executable;
  mkdirSync(home, { recursive: true });
  const partial = `${executable}.partial-${process.pid}`;
  try {
    await pipeline(createReadStream(join(packageRoot(), 'bin', 'chromium.br')), createBrotliDecompress(), createWriteStream(partial, { mode: 0o755 }));
    // Another run may have finished first: both copies are whole, so replacing is safe.
    renameSync(partial, executable);
  } finally {
    rmSync(partial, { force: true });
  }
  return executable;
}
