/**
 * The built CLI (dist/src/cli.js, what the `hospital-bulk` bin runs) as a child process
 * against the real service listening on a real port, with the directory simulator behind
 * it. `npm test` builds first; when running jest directly, run `npm run build` before.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { directoryWaitText, progressBar } from '../src/cli/render.js';
import { writeWorkbook } from '../src/bulk/xlsxWrite.js';
import { closedPortUrl, requestsTo, startStack, tempDir, type Stack } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(root, 'dist/src/cli.js');
const NO_STACK_TRACE = /^\s+at /m;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with a clean environment, so no HOSPITAL_BULK_* of the caller's shell leaks in. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

const csv = (rows: number, prefix = 'Hospital') =>
  ['name,address,phone', ...Array.from({ length: rows }, (_, i) => `${prefix} ${i + 1},${i + 1} Main St,555-01${String(i).padStart(2, '0')}`)].join('\n');

const files = tempDir();
afterAll(() => files.remove());
function csvFile(name: string, content: string | Buffer): string {
  const path = join(files.path, name);
  writeFileSync(path, content);
  return path;
}

let stack: Stack | undefined;
let servers: Server[] = [];
let url = '';

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The real service on a real port, with the simulator behind it. */
async function serve(): Promise<void> {
  stack = await startStack({ sim: { createDelayMs: 20 } });
  url = await listen(createServer(stack.app));
}

afterEach(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  servers = [];
  await stack?.close();
  stack = undefined;
});

const at = (...args: string[]) => cli([...args, '--url', url]);
const lines = (text: string) => text.split('\n').filter((line) => line !== '');
const tableRow = (stdout: string, row: number) => lines(stdout).find((line) => line.startsWith(`${row} `));

/** Uploads with --json and returns the report, for tests about what comes after. */
async function uploaded(file: string): Promise<{ batch_id: string; status: string }> {
  const run = await at('upload', file, '--json');
  return JSON.parse(run.stdout) as { batch_id: string; status: string };
}

describe('upload', () => {
  test('when the file is an .xlsx workbook with familiar headers, then its rows reach the directory as text', async () => {
    await serve();
    const workbook = writeWorkbook([['Hospital Name', 'Street Address', 'Phone Number'], ['Hôpital Saint-Éloi', '12 Rue de la Paix', '5551234567']]);

    const run = await at('upload', csvFile('hospitals.xlsx', workbook));

    expect(run.code).toBe(0);
    expect(stack!.sim.hospitals().map(({ name, address, phone }) => ({ name, address, phone }))).toEqual([
      { name: 'Hôpital Saint-Éloi', address: '12 Rue de la Paix', phone: '5551234567' },
    ]);
  });

  test('when a valid file is uploaded, then it exits 0 and prints every row created_and_activated and the summary', async () => {
    await serve();

    const run = await at('upload', csvFile('three.csv', csv(3)));

    expect(run.code).toBe(0);
    expect(lines(run.stdout)[0]).toMatch(/^row\s+hospital id\s+name\s+status\s+attempts\s+error$/);
    for (const row of [1, 2, 3]) expect(tableRow(run.stdout, row)).toMatch(new RegExp(`^${row}\\s+\\d+\\s+Hospital ${row}\\s+created_and_activated\\s+1\\s+-$`));
    expect(run.stdout).toMatch(/^batch [0-9a-f-]{36}  completed  3 created, 0 failed of 3  activated yes  time \d+\.\d s$/m);
    expect(stack!.sim.hospitals().map((h) => [h.name, h.active])).toEqual([
      ['Hospital 1', true],
      ['Hospital 2', true],
      ['Hospital 3', true],
    ]);
  });

  test('when the directory refuses a row, then it exits 1 and shows the failed row with the directory\'s reason', async () => {
    await serve();
    stack!.sim.inject('create', { kind: 'pass' });
    stack!.sim.inject('create', { kind: 'status', status: 400, body: { detail: 'Refused' } });

    const run = await at('upload', csvFile('refused.csv', csv(3)));

    expect(run.code).toBe(1);
    expect(tableRow(run.stdout, 2)).toMatch(/^2\s+-\s+Hospital 2\s+failed\s+1\s+Rejected by the directory \(HTTP 400\): Refused$/);
    expect(tableRow(run.stdout, 1)).toMatch(/\bcreated\b/);
    expect(run.stdout).toMatch(/^batch \S+  failed  2 created, 1 failed of 3  activated no/m);
    expect(run.stdout).toMatch(/^next: hospital-bulk resume \S+ +or +hospital-bulk rollback \S+$/m);
  });

  test('when --json is given, then stdout is only the final report as JSON, the same as GET /batches/:id', async () => {
    await serve();

    const run = await at('upload', csvFile('json.csv', csv(2)), '--json');

    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as { batch_id: string; status: string };
    expect(report).toMatchObject({ status: 'completed', total_hospitals: 2, batch_activated: true });
    expect(report).toEqual(await (await fetch(`${url}/batches/${report.batch_id}`)).json());
    expect(run.stderr).toBe('');
  });

  test('when stderr is not a terminal, then it gets one plain line per row event, in order', async () => {
    await serve();

    const run = await at('upload', csvFile('plain.csv', csv(3)));

    expect(lines(run.stderr)).toEqual([
      expect.stringMatching(/^\[1\/3\] row 1 created \(hospital \d+, attempts 1\)$/),
      expect.stringMatching(/^\[2\/3\] row 2 created \(hospital \d+, attempts 1\)$/),
      expect.stringMatching(/^\[3\/3\] row 3 created \(hospital \d+, attempts 1\)$/),
    ]);
    expect(run.stderr).not.toMatch(/\r|\x1b/);
  });

  test('when the CSV is invalid, then it exits 1 with a line/column/message table and nothing reaches the directory', async () => {
    await serve();

    const run = await at('upload', csvFile('bad.csv', 'name,address,phone\nGood Hospital,1 Road,\n ,2 Road,\nOther,,\n'));

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(lines(run.stderr)).toEqual([
      'hospital-bulk: 400 The CSV has 2 problems; nothing was created.',
      expect.stringMatching(/^line\s+column\s+message$/),
      expect.stringMatching(/^-+\s+-+\s+-+$/),
      expect.stringMatching(/^3\s+name\s+name is required$/),
      expect.stringMatching(/^4\s+address\s+address is required$/),
    ]);
    expect(stack!.sim.requests).toEqual([]);
  });
});

describe('history and actions', () => {
  test('when batches are listed, then the table shows them newest first, and --limit pages with the cursor it prints', async () => {
    await serve();
    const first = await uploaded(csvFile('first.csv', csv(1, 'First')));
    const second = await uploaded(csvFile('second.csv', csv(2, 'Second')));

    const all = await at('batches');
    const page = await at('batches', '--limit', '1');
    const cursor = /^more: hospital-bulk batches --cursor (\S+)$/m.exec(page.stdout)?.[1];
    const next = await at('batches', '--limit', '1', '--cursor', cursor ?? 'missing');

    expect(all.code).toBe(0);
    expect(lines(all.stdout)).toEqual([
      expect.stringMatching(/^batch id\s+file\s+status\s+created\s+activated\s+created at$/),
      expect.stringMatching(/^-+/),
      expect.stringMatching(new RegExp(`^${second.batch_id}\\s+second\\.csv\\s+completed\\s+2/2\\s+yes\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$`)),
      expect.stringMatching(new RegExp(`^${first.batch_id}\\s+first\\.csv\\s+completed\\s+1/1\\s+yes\\s`)),
    ]);
    expect(page.stdout).toContain(second.batch_id);
    expect(page.stdout).not.toContain(first.batch_id);
    expect(next.code).toBe(0);
    expect(next.stdout).toContain(first.batch_id);
  });

  test('when show is given a batch id, then it prints that batch\'s table and summary and exits 0 for a completed batch', async () => {
    await serve();
    const { batch_id: id } = await uploaded(csvFile('show.csv', csv(2)));

    const run = await at('show', id);

    expect(run.code).toBe(0);
    expect(tableRow(run.stdout, 1)).toMatch(/Hospital 1\s+created_and_activated/);
    expect(tableRow(run.stdout, 2)).toMatch(/Hospital 2\s+created_and_activated/);
    expect(run.stdout).toContain(`batch ${id}  completed  2 created, 0 failed of 2`);
  });

  test('when show is given --json, then stdout is exactly the service\'s report', async () => {
    await serve();
    const { batch_id: id } = await uploaded(csvFile('show-json.csv', csv(1)));

    const run = await at('show', id, '--json');

    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual(await (await fetch(`${url}/batches/${id}`)).json());
  });

  test('when show is given an unknown batch, then it exits 1 with the 404 detail in one line', async () => {
    await serve();

    const run = await at('show', '6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55');

    expect(run).toEqual({ code: 1, stdout: '', stderr: 'hospital-bulk: 404 No batch with id 6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55.\n' });
  });

  test('when a failed batch is rolled back, then it exits 0 with status rolled_back and the directory no longer holds it', async () => {
    await serve();
    stack!.sim.inject('create', { kind: 'status', status: 400, body: { detail: 'Refused' } });
    const failed = await uploaded(csvFile('to-roll-back.csv', csv(2)));
    expect(failed.status).toBe('failed');

    const run = await at('rollback', failed.batch_id);

    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`batch ${failed.batch_id}  rolled_back`);
    expect(tableRow(run.stdout, 2)).toMatch(/\bdeleted\b/);
    expect(requestsTo(stack!.sim, 'deleteBatch')).toHaveLength(1);
    expect(stack!.sim.hospitals().filter((h) => h.creation_batch_id === failed.batch_id)).toEqual([]);
  });

  test('when a completed batch is resumed, then it exits 1 with the 409 detail on stderr', async () => {
    await serve();
    const { batch_id: id } = await uploaded(csvFile('done.csv', csv(1)));

    const run = await at('resume', id);

    expect(run).toEqual({ code: 1, stdout: '', stderr: 'hospital-bulk: 409 The batch is completed; only a failed or interrupted batch can be resumed.\n' });
  });

  test('when a failed batch is resumed and the directory now accepts the row, then it exits 0 with the batch completed', async () => {
    await serve();
    // A failure the directory may heal (a rejection would not be sent again unchanged).
    stack!.sim.inject('create', { kind: 'status', status: 503 }, 3);
    const { batch_id: id } = await uploaded(csvFile('resume.csv', csv(2)));

    const run = await at('resume', id);

    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`batch ${id}  completed  2 created, 0 failed of 2  activated yes`);
  });
});

describe('arguments', () => {
  test.each([
    [[], /^hospital-bulk: no command given; see hospital-bulk --help$/],
    [['frobnicate'], /^hospital-bulk: unknown command "frobnicate"; see hospital-bulk --help$/],
    [['upload'], /^hospital-bulk: upload needs a CSV file; see hospital-bulk --help$/],
    [['upload', 'no-such-file.csv'], /^hospital-bulk: file not found: no-such-file\.csv; see hospital-bulk --help$/],
    [['show'], /^hospital-bulk: show needs a batch id; see hospital-bulk --help$/],
    [['batches', '--bogus'], /^hospital-bulk: unknown option --bogus; see hospital-bulk --help$/],
    [['batches', '--limit', 'many'], /^hospital-bulk: --limit must be a whole number from 1 to 200, got "many"; see hospital-bulk --help$/],
    [['batches', '--url', 'ftp://example.com'], /^hospital-bulk: --url must be an http\(s\) URL, got "ftp:\/\/example\.com"; see hospital-bulk --help$/],
  ])('when the arguments are %j, then it exits 2 with one line on stderr and no stack trace', async (args, message) => {
    const run = await cli(args);

    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(lines(run.stderr)).toEqual([expect.stringMatching(message)]);
    expect(run.stderr).not.toMatch(NO_STACK_TRACE);
  });

  test('when --help or -h is given, even with other mistakes, then the usage text is printed and it exits 0', async () => {
    const long = await cli(['--help']);
    const short = await cli(['upload', '-h', '--bogus']);

    expect(long.code).toBe(0);
    expect(long.stdout).toMatch(/^Usage: hospital-bulk <command> \[options\]/);
    for (const word of ['upload <file.csv>', 'batches', 'show <batch-id>', 'resume <batch-id>', 'rollback <batch-id>', '--url', '--api-key', '--json', '--limit']) {
      expect(long.stdout).toContain(word);
    }
    expect(short).toEqual(long);
  });
});

describe('connection', () => {
  test('when the service cannot be reached, then it exits 1 with one line naming the URL and the reason, no stack trace', async () => {
    const closed = await closedPortUrl();

    const listing = await cli(['batches', '--url', closed]);
    const upload = await cli(['upload', csvFile('unsent.csv', csv(1))], { HOSPITAL_BULK_URL: closed });

    for (const run of [listing, upload]) {
      expect(run).toEqual({ code: 1, stdout: '', stderr: `hospital-bulk: cannot reach ${closed} (ECONNREFUSED)\n` });
    }
  });

  test('when --api-key or HOSPITAL_BULK_API_KEY is set, then requests carry Authorization: Bearer <key>, and none without', async () => {
    const seen: (string | undefined)[] = [];
    const fake = await listen(
      createServer((req, res) => {
        seen.push(req.headers.authorization);
        res.writeHead(req.method === 'GET' && req.url === '/batches' ? 200 : 404, { 'content-type': 'application/json' });
        res.end('{"batches":[],"next_cursor":null}');
      }),
    );

    const runs = [
      await cli(['batches', '--url', fake, '--api-key', 'secret']),
      await cli(['batches', '--url', fake], { HOSPITAL_BULK_API_KEY: 'from-env' }),
      await cli(['batches', '--url', fake]),
    ];

    expect(runs.map((run) => [run.code, run.stdout])).toEqual(Array(3).fill([0, 'No batches yet.\n']));
    expect(seen).toEqual(['Bearer secret', 'Bearer from-env', undefined]);
  });
});

describe('event stream', () => {
  const ID = '6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55';
  const row = (n: number, total: number) =>
    JSON.stringify({ row: n, status: 'created', hospital_id: 100 + n, error_message: null, attempts: 1, progress: { done: n, failed: 0, pending: total - n, percent: 50, current_row: null, elapsed_seconds: 1, eta_seconds: 1 } });
  const report = {
    batch_id: ID, filename: 'f.csv', status: 'completed', total_hospitals: 2, processed_hospitals: 2, failed_hospitals: 0, batch_activated: true,
    created_at: '2026-01-01T00:00:00.000Z', completed_at: '2026-01-01T00:00:01.000Z', processing_time_seconds: 1, error: null, notice: null,
    hospitals: [1, 2].map((n) => ({ row: n, hospital_id: 100 + n, name: `H${n}`, address: 'A', phone: null, status: 'created_and_activated', error_message: null, attempts: 1 })),
  };

  /** A stand-in service whose event stream is scripted per connection (`streams[i]` for the i-th). */
  async function scriptedService(streams: ((res: ServerResponse) => void)[]) {
    const lastEventIds: (string | undefined)[] = [];
    const fake = await listen(
      createServer((req: IncomingMessage, res: ServerResponse) => {
        if (req.method === 'POST') {
          res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ batch_id: ID, status: 'processing', total_hospitals: 2 }));
          return;
        }
        lastEventIds.push(req.headers['last-event-id'] as string | undefined);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        (streams[lastEventIds.length - 1] ?? streams.at(-1)!)(res);
      }),
    );
    return { url: fake, lastEventIds };
  }

  test('when the stream drops before the report, then the CLI reconnects with Last-Event-ID and sees every row once', async () => {
    const service = await scriptedService([
      (res) => {
        res.write(`retry: 10\n\nid: 1\nevent: batch\ndata: {"status":"processing"}\n\nid: 2\nevent: row\ndata: ${row(1, 2)}\n\n`);
        setTimeout(() => res.socket?.destroy(), 20);
      },
      // CRLF line endings, and a chunk boundary in the middle of a line.
      (res) => {
        const rest = `id: 3\r\nevent: row\r\ndata: ${row(2, 2)}\r\n\r\n: keep-alive\r\n\r\nid: 3\r\nevent: report\r\ndata: ${JSON.stringify(report)}\r\n\r\n`;
        res.write(rest.slice(0, 25));
        setTimeout(() => res.end(rest.slice(25)), 20);
      },
    ]);

    const run = await cli(['upload', csvFile('drop.csv', csv(2)), '--url', service.url]);

    expect(run.code).toBe(0);
    expect(service.lastEventIds).toEqual([undefined, '2']);
    expect(lines(run.stderr)).toEqual(['[1/2] row 1 created (hospital 101, attempts 1)', '[2/2] row 2 created (hospital 102, attempts 1)']);
    expect(run.stdout).toContain(`batch ${ID}  completed  2 created, 0 failed of 2`);
  });

  test('when the directory is being retried, then the progress says so, with the attempt and the time to the next try', async () => {
    const wait = { row: 2, op: 'create', reason: 'retry', attempt: 1, status: 503, message: 'Service Unavailable', retry_at: '2026-01-01T00:00:05.000Z', retry_in_seconds: 4 };
    const service = await scriptedService([
      (res) =>
        res.end(
          `id: 1\nevent: row\ndata: ${row(1, 2)}\n\nid: 2\nevent: directory\ndata: ${JSON.stringify(wait)}\n\n` +
            `id: 3\nevent: row\ndata: ${row(2, 2)}\n\nid: 3\nevent: report\ndata: ${JSON.stringify(report)}\n\n`,
        ),
    ]);

    const run = await cli(['upload', csvFile('slow.csv', csv(2)), '--url', service.url]);

    expect(run.code).toBe(0);
    expect(lines(run.stderr)).toEqual([
      '[1/2] row 1 created (hospital 101, attempts 1)',
      'row 2: the directory answered 503; trying again (attempt 2) in 4 s',
      '[2/2] row 2 created (hospital 102, attempts 1)',
    ]);
  });

  test('when the stream keeps dropping, then after a few reconnects it exits 1 with one line saying how to find the batch', async () => {
    const service = await scriptedService([(res) => res.end('retry: 5\n\n')]);

    const run = await cli(['upload', csvFile('gone.csv', csv(2)), '--url', service.url]);

    expect(run.code).toBe(1);
    expect(service.lastEventIds.length).toBe(6);
    expect(run.stderr).toBe(`hospital-bulk: lost the connection to ${service.url} (the event stream ended before the report); the batch goes on: hospital-bulk show ${ID}\n`);
  });
});

describe('directory trouble', () => {
  test('a retry names the status and the next attempt; a rate limit the time to the next try; an unanswered call its reason', () => {
    const event = { row: null, op: 'wake' as const, attempt: 1, message: 'connect ECONNREFUSED', retry_at: '2026-01-01T00:00:38.000Z', retry_in_seconds: 38 };

    expect(directoryWaitText({ ...event, reason: 'rate_limited', status: 429 }, 38)).toBe("waiting for the directory's rate limit: next try in 38 s");
    expect(directoryWaitText({ ...event, reason: 'retry', status: 502 }, 4)).toBe('the directory answered 502; trying again (attempt 2) in 4 s');
    expect(directoryWaitText({ ...event, reason: 'retry', status: null }, 0)).toBe('the directory did not answer (connect ECONNREFUSED); trying again (attempt 2) now');
  });
});

describe('progress bar', () => {
  test('when 9 of 20 rows are finished, then the bar is 9/20 full with the counts, elapsed time and ETA', () => {
    expect(progressBar({ done: 8, failed: 1, total: 20, elapsedSeconds: 42.2, etaSeconds: 51 })).toBe(
      '[#########-----------] 9/20  done 8  failed 1  elapsed 0:42  eta 0:51',
    );
    expect(progressBar({ done: 0, failed: 0, total: 5, elapsedSeconds: 3725, etaSeconds: null })).toBe(
      '[--------------------] 0/5  done 0  failed 0  elapsed 1:02:05  eta -:--',
    );
  });
});
