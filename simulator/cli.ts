/**
 * Runs the Hospital Directory simulator as its own process:
 *   npm run sim -- --port 10000 --delay-ms 5000 [--host H] [--cold-start-ms N] [--rate-window-ms N] [--no-rate-limits]
 * Drive it over HTTP through /__sim/ (see simulator.ts).
 */
import { parseArgs } from 'node:util';
import { createSimulator } from './simulator.js';
import type { SimulatorOptions } from './simulator.js';

function usageError(message: string): never {
  process.stderr.write(`sim: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(2);
}

function integer(flag: string, value: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > max) usageError(`--${flag} must be an integer from 0 to ${max}, got "${value}"`);
  return n;
}

function parseOptions(): SimulatorOptions {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string', default: '10000' },
        host: { type: 'string', default: '127.0.0.1' },
        'delay-ms': { type: 'string', default: '5000' },
        'cold-start-ms': { type: 'string', default: '0' },
        'rate-window-ms': { type: 'string', default: '60000' },
        'no-rate-limits': { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    usageError((err as Error).message);
  }
  const windowMs = integer('rate-window-ms', values['rate-window-ms']);
  if (windowMs === 0) usageError('--rate-window-ms must be at least 1');
  return {
    host: values.host,
    port: integer('port', values.port, 65535),
    createDelayMs: integer('delay-ms', values['delay-ms']),
    coldStartMs: integer('cold-start-ms', values['cold-start-ms']),
    rateLimits: values['no-rate-limits'] ? false : { windowMs },
  };
}

const sim = createSimulator(parseOptions());
try {
  await sim.listen();
} catch (err) {
  process.stderr.write(`sim: cannot listen: ${(err as Error).message}\n`);
  process.exit(1);
}
process.stdout.write(`Hospital Directory simulator listening on ${sim.url}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void sim.close().then(() => process.exit(0)));
}
