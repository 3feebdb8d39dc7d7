/**
 * README's runnable examples, run as a reader would: `npm run demo -- --serve` in one
 * terminal (here the demo script itself with `--port 0`, on the free ports the service and
 * the simulator each bind and print instead of 3000 and 3001: `npm test` has built dist/
 * already), every line of each block marked `<!-- runnable -->` in
 * another, from a folder holding sample_hospitals.csv. A line ending in `# → 200` must get
 * that HTTP status (curl prints it through a .curlrc of the test's, so the line runs as
 * written); one ending in `# → exit 1` must end with that code; any other must succeed.
 * `hospital-bulk` is on the PATH, as `npm link` puts it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { finished, tempDir, type Finished } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const README_PORT = 3000;
const README_SIM_PORT = 3001;
const STATUS_MARK = '@@status';
// A batch meets the directory's retries (2 s, then 4 s) in the simulator example.
const TIMEOUT_MS = 120_000;

interface Line {
  command: string;
  expected: { status: number } | { exit: number } | null;
}

/** Every ```sh block that `<!-- runnable -->` precedes, as lines with what each must give. */
function runnableBlocks(readme: string): Line[][] {
  return [...readme.matchAll(/^<!-- runnable -->\n```sh\n([\s\S]*?)^```$/gm)].map((match) =>
    match[1]!
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((command) => {
        const status = /#\s*→\s*(\d{3})\s*$/.exec(command);
        const exit = /#\s*→\s*exit (\d+)\s*$/.exec(command);
        return { command, expected: status ? { status: Number(status[1]) } : exit ? { exit: Number(exit[1]) } : null };
      }),
  );
}

const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = runnableBlocks(readme);
const work = tempDir();
let demo: ChildProcess | undefined;
let demoOutput = '';
/** Where the demo serves (README's localhost:3000) and its simulator (localhost:3001). */
let port = 0;
let simPort = 0;

beforeAll(async () => {
  if (spawnSync('curl', ['--version']).error) throw new Error("README's examples use curl, which is not installed (apt-get install curl).");
  if (!existsSync(join(root, 'dist/src/server.js'))) throw new Error('dist/ is missing: run `npm run build` first (npm test does).');
  copyFileSync(join(root, 'sample_hospitals.csv'), join(work.path, 'sample_hospitals.csv'));
  writeFileSync(join(work.path, '.curlrc'), `write-out = "\\n${STATUS_MARK} %{http_code}\\n"\n`);
  mkdirSync(join(work.path, 'bin'));
  writeFileSync(join(work.path, 'bin/hospital-bulk'), `#!/bin/sh\nexec '${process.execPath}' '${join(root, 'dist/src/cli.js')}' "$@"\n`);
  chmodSync(join(work.path, 'bin/hospital-bulk'), 0o755);

  demo = spawn(join(root, 'node_modules/.bin/tsx'), ['scripts/demo.ts', '--serve', '--port', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const ready = new Promise<void>((resolve, reject) => {
    const collect = (chunk: Buffer) => {
      demoOutput += chunk.toString();
      if (demoOutput.includes('Press Ctrl-C to stop.')) resolve();
    };
    demo!.stdout!.on('data', collect);
    demo!.stderr!.on('data', collect);
    demo!.once('exit', (code) => reject(new Error(`the demo exited (code ${code}) before serving:\n${demoOutput}`)));
  });
  await ready;
  const serving = /^Serving at http:\/\/localhost:(\d+) {2}\(directory simulator at http:\/\/localhost:(\d+),/m.exec(demoOutput);
  if (!serving) throw new Error(`the demo did not say where it serves:\n${demoOutput}`);
  [port, simPort] = [Number(serving[1]), Number(serving[2])];
}, TIMEOUT_MS);

afterAll(async () => {
  if (demo && demo.exitCode === null && demo.signalCode === null) {
    const exited = once(demo, 'exit');
    demo.kill('SIGINT');
    await exited;
  }
  work.remove();
}, TIMEOUT_MS);

/** Runs one README line as written, with only the ports changed. */
async function run(command: string): Promise<Finished> {
  const local = command.replaceAll(`localhost:${README_PORT}`, `localhost:${port}`).replaceAll(`localhost:${README_SIM_PORT}`, `localhost:${simPort}`);
  const child = spawn('/bin/sh', ['-c', local], {
    cwd: work.path,
    env: {
      PATH: `${join(work.path, 'bin')}:${process.env.PATH ?? ''}`,
      CURL_HOME: work.path,
      // The CLI's default (http://localhost:3000) moved with the demo.
      HOSPITAL_BULK_URL: `http://localhost:${port}`,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return finished(child);
}

test('README has runnable blocks, and every curl or hospital-bulk line in them says what it gives', () => {
  expect(blocks.length).toBeGreaterThanOrEqual(5);
  const unchecked = blocks.flat().filter((line) => /^(curl|hospital-bulk)\b/.test(line.command) && line.expected === null);
  expect(unchecked).toEqual([]);
  // A `# →` the reader sees is one this test checks: none outside a runnable block.
  expect(readme.match(/#\s*→\s*(exit )?\d+\s*$/gm)?.length).toBe(blocks.flat().filter((line) => line.expected !== null).length);
});

/**
 * A reader reads on between examples: batches an earlier example started in the background
 * (the async upload) have finished before the next block, so its faults meet its own rows.
 */
async function untilNoBatchRuns(): Promise<void> {
  for (;;) {
    const { batches } = (await (await fetch(`http://127.0.0.1:${port}/batches`)).json()) as { batches: { status: string }[] };
    if (!batches.some((batch) => batch.status === 'pending' || batch.status === 'processing')) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe.each(blocks.map((lines, i) => [i + 1, lines] as const))('runnable block %i', (_n, lines) => {
  beforeAll(untilNoBatchRuns, TIMEOUT_MS);

  test.each(lines.map((line) => [line.command, line] as const))('%s', async (_command, line) => {
    const result = await run(line.command);

    const outcome = line.expected && 'status' in line.expected
      ? { status: Number(new RegExp(`^${STATUS_MARK} (\\d+)$`, 'm').exec(result.stdout)?.[1]) }
      : { exit: result.code };
    const expected = line.expected ?? { exit: 0 };
    if (JSON.stringify(outcome) !== JSON.stringify(expected)) {
      // The whole answer, to see why.
      expect({ ...outcome, stdout: result.stdout, stderr: result.stderr }).toEqual({ ...expected, stdout: result.stdout, stderr: result.stderr });
    }
    expect(outcome).toEqual(expected);
  }, TIMEOUT_MS);
});
