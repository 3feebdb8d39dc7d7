/**
 * Runs the Hospital Directory simulator as its own process (`npm run sim -- --help`).
 * Drive it over HTTP through /__sim/ (see simulator.ts and README, "The directory simulator").
 */
import { parseArgs } from 'node:util';
import { ROUTE_NAMES, createSimulator } from './simulator.js';
import type { SimulatorOptions } from './simulator.js';

const USAGE = `Usage: npm run sim -- [options]

A local stand-in for the Hospital Directory API (same routes, answers, ~5 s creates, rate
limits and cold starts), for running the service by hand without the network.

Options:
  --port <n>            port to listen on (default 10000; 0 picks a free one)
  --host <address>      interface to listen on (default 127.0.0.1)
  --delay-ms <ms>       how long each create takes (default 5000, like the real directory)
  --cold-start-ms <ms>  after POST /__sim/sleep, how long the first request waits (default 0)
  --rate-window-ms <ms> the rate limits' window (default 60000: 30 creates a minute)
  --no-rate-limits      never answer 429
  -h, --help            print this help

Controls, over HTTP on the same port (JSON bodies):
  POST /__sim/faults   {"route": R, "fault": F, "times": n}: the next n calls to R misbehave
                       R: ${ROUTE_NAMES.join(', ')}
                       F: {"kind": "status", "status": 503}   answer that status (with "body": {...})
                          {"kind": "reset"}                   drop the connection at once
                          {"kind": "hang"}                    never answer
                          {"kind": "lose-response"}           do the work, then drop the connection
                          {"kind": "pass"}                    serve normally (to script sequences)
                          "store": true on status or hang: the create is stored all the same
  POST /__sim/delay    {"ms": n}: creates take n ms from now on
  POST /__sim/sleep    forget every hospital, as the real one does when it sleeps (and wake
                       slowly if --cold-start-ms is set)
  POST /__sim/reset    forget hospitals, faults and recorded requests
  GET  /__sim/state    the hospitals held and counters; GET /__sim/requests: every request seen
`;

function usageError(message: string): never {
  process.stderr.write(`sim: ${message.replace(/\s*\n\s*/g, ' ')}; see npm run sim -- --help\n`);
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
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    usageError((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
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
