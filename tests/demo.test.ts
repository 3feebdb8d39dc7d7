/**
 * The newcomer's first command, as README's quick start gives it: `npm run demo` with no
 * arguments (npm test has built dist/ already). It must run the sample file to a completed,
 * activated batch and stop by itself.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

test('when a newcomer runs the demo with no arguments, then the sample file ends completed and activated, and the demo exits 0', async () => {
  expect(existsSync(join(root, 'dist/src/server.js'))).toBe(true);
  const demo = spawn(join(root, 'node_modules/.bin/tsx'), ['scripts/demo.ts'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  demo.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  demo.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));

  const [code] = (await once(demo, 'exit')) as [number | null];

  expect({ code, output }).toEqual({ code: 0, output: expect.stringMatching(/^batch \S+ {2}completed {2}5 created, 0 failed of 5 {2}activated yes/m) });
}, 60_000);
