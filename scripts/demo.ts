/**
 * `npm run demo [-- --serve [--port N]]`: the whole service end to end, with no network.
 * A local simulator of the Hospital Directory runs in this process; the BUILT service
 * (dist/src/server.js, what `npm start` runs in production) runs as a child process
 * against it; sample_hospitals.csv is uploaded and the report and history are printed.
 * With --serve both keep running after the upload until Ctrl-C: the service on
 * http://localhost:3000 (README's examples use it), the simulator on the next port.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BatchReport, BatchSummary } from '../src/http/presenter.js';
import { hintFor } from '../src/cli/hints.js';
import { batchesText, reportText } from '../src/cli/render.js';
import { createSimulator } from '../simulator/simulator.js';

const USAGE = `Usage: npm run demo [-- --serve [--port N]]

Starts a local directory simulator and the built service, uploads sample_hospitals.csv and
prints the report and the history.

  --serve      keep both running afterwards, until Ctrl-C: the service on
               http://localhost:3000, the simulator on the next port (3001)
  --port <n>   with --serve: the service's port instead of 3000 (the simulator takes n+1);
               0 puts each on a free port of its own (both are printed)
  -h, --help   print this help
`;

const CREATE_DELAY_MS = 300;
// Declared before parseDemoArgs() runs: a plain `npm run demo` reads it there.
const DEFAULT_PORT = 3000;
const args = parseDemoArgs();
const root = fileURLToPath(new URL('..', import.meta.url));

// Served on fixed ports, so README's examples (http://localhost:3000) work as written;
// a one-off run (or --port 0) binds port 0: each server gets a free port from the kernel
// and says which, so nothing can take it between a check and the bind.
const fixedPorts = args.serve && args.port !== 0;
const simPort = fixedPorts ? args.port + 1 : 0;

// Rate limits stay on so the service meets the same 30 creates/min budget as in production.
const sim = createSimulator({ createDelayMs: CREATE_DELAY_MS, rateLimits: {}, port: simPort });
await sim.listen().catch((error: unknown) => portTaken(simPort, error));
console.log(`Hospital Directory: local simulator at ${sim.url}, ${CREATE_DELAY_MS} ms per create instead of the real ~5 s (rate limits on).`);

// Before the service starts: a clear message rather than the service's own on a taken port.
if (fixedPorts) await assertPortFree(args.port);
const dir = mkdtempSync(join(tmpdir(), 'hospital-bulk-demo-'));
// Only the variables the demo means: a HOSPITAL_API_BASE_URL or MAX_ROWS exported in the
// caller's shell must not point the demo at the real directory or change its behaviour.
const child = spawn(process.execPath, [join(root, 'dist/src/server.js')], {
  cwd: root,
  env: {
    PORT: String(fixedPorts ? args.port : 0),
    HOST: '127.0.0.1',
    HOSPITAL_API_BASE_URL: sim.url,
    DATABASE_PATH: join(dir, 'demo.db'),
    // Info for its `listening` line (the port it got); only warnings and errors are shown.
    LOG_LEVEL: 'info',
    NODE_ENV: 'development',
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
// Kept until the service is healthy (shown if it never is), then passed through live so
// warnings during the upload or while serving are visible.
let startupOutput = '';
let started = false;
let listeningUrl: string | undefined;
// Its readable log lines (src/logger.ts): `12:00:00.000 info listening {"url":"http://127.0.0.1:3000",...}`.
const INFO_LINE = /^\d\d:\d\d:\d\d\.\d{3} (?:info|debug) /;
const LISTENING_LINE = /^\S+ info listening (\{.*\})$/;
createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
  const listening = LISTENING_LINE.exec(line);
  if (listening) listeningUrl ??= (JSON.parse(listening[1]!) as { url: string }).url;
  if (!started) startupOutput += `${line}\n`;
  else if (!INFO_LINE.test(line)) process.stderr.write(`${line}\n`);
});
child.stderr.on('data', (chunk: Buffer) => (started ? process.stderr.write(chunk) : (startupOutput += chunk.toString())));
const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null }));

let exitCode = 1;
try {
  const serviceUrl = await waitHealthy(15_000);
  const port = Number(new URL(serviceUrl).port);
  started = true;
  console.log(`Service: built server (dist/src/server.js) at ${serviceUrl}, history in ${join(dir, 'demo.db')}\n`);

  const csv = readFileSync(join(root, 'sample_hospitals.csv'));
  const form = new FormData();
  form.append('file', new Blob([csv], { type: 'text/csv' }), 'sample_hospitals.csv');
  console.log('POST /hospitals/bulk  (sample_hospitals.csv) ...');
  const response = await fetch(`${serviceUrl}/hospitals/bulk`, { method: 'POST', body: form });
  if (!response.ok) throw new Error(`upload answered ${response.status}: ${await response.text()}`);
  const report = (await response.json()) as BatchReport;

  // The same screens the CLI prints (src/cli/render.ts), with hints for this service.
  const hint = hintFor({ url: `http://localhost:${port}`, apiKeyFrom: null });
  process.stdout.write(`${reportText(report, hint)}\n`);

  console.log('GET /batches');
  const history = (await (await fetch(`${serviceUrl}/batches`)).json()) as { batches: BatchSummary[]; next_cursor: string | null };
  process.stdout.write(batchesText(history.batches, history.next_cursor, hint));

  if (args.serve) {
    const shown = `http://localhost:${port}`;
    const cli = `node dist/src/cli.js${port === DEFAULT_PORT ? '' : ` --url ${shown}`}`;
    console.log(`\nServing at ${shown}  (directory simulator at http://localhost:${sim.port}, controls in README).`);
    console.log(`  The page:  ${shown}/   (check a file, upload it, watch it, find it later)`);
    console.log(`  API docs:  ${shown}/docs`);
    console.log('Try:');
    console.log(`  curl ${shown}/batches/${report.batch_id}`);
    console.log(`  curl -F file=@sample_hospitals.csv ${shown}/hospitals/bulk`);
    console.log(`  ${cli} check sample_hospitals.csv`);
    console.log('Press Ctrl-C to stop.');
    // Ctrl-C reaches the child too (same process group); either way we clean up below.
    await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM'), exited]);
    console.log('\nStopping...');
    exitCode = 0;
  } else {
    console.log('\nTo open the page and the API docs in a browser: npm run demo -- --serve');
    exitCode = report.status === 'completed' ? 0 : 1;
  }
} catch (error) {
  console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
  if (!started && startupOutput) console.error(`--- service output ---\n${startupOutput.trimEnd()}`);
} finally {
  await stopChild();
  await sim.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(exitCode);


function parseDemoArgs(): { serve: boolean; port: number } {
  let values;
  try {
    ({ values } = parseArgs({ options: { serve: { type: 'boolean', default: false }, port: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (error) {
    return usageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (values.port !== undefined && !values.serve) usageError('--port only applies with --serve');
  const port = values.port === undefined ? DEFAULT_PORT : Number(values.port);
  if (!/^\d+$/.test(values.port ?? '0') || port > 65534) usageError(`--port must be a port number from 1 to 65534 (or 0: any free ones), got "${values.port}"`);
  return { serve: values.serve, port };
}

function usageError(message: string): never {
  process.stderr.write(`demo: ${message.replace(/\s*\n\s*/g, ' ')}\n\n${USAGE}`);
  process.exit(2);
}

async function assertPortFree(wanted: number): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve) => {
    probe.once('error', (error) => {
      void sim.close().then(() => portTaken(wanted, error));
    });
    probe.listen(wanted, '127.0.0.1', () => probe.close(() => resolve()));
  });
}

function portTaken(taken: number, error: unknown): never {
  const inUse = (error as { code?: unknown }).code === 'EADDRINUSE';
  process.stderr.write(
    inUse
      ? `demo: port ${taken} is already in use (another demo still running?); choose others: npm run demo -- --serve --port ${args.port + 2}\n`
      : `demo: cannot listen on port ${taken}: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
}

/**
 * Waits for the service's `listening` line, then polls GET /health there; gives up when the
 * child exits (bad config, port taken) or time runs out. Resolves with the service's URL.
 */
async function waitHealthy(timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the service exited (code ${child.exitCode}, signal ${child.signalCode}) before it answered /health`);
    }
    const url = listeningUrl;
    const ok = url !== undefined && (await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.status === 200, () => false));
    if (ok) return url;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`the service did not answer GET /health with 200 within ${timeoutMs / 1000} s`);
}

/** SIGTERM is the service's clean shutdown (it closes the database); SIGKILL only if it hangs. */
async function stopChild(): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  const { code, signal } = await exited;
  clearTimeout(timer);
  if (started) console.log(`\nService stopped (exit code ${code ?? signal}).`);
}

