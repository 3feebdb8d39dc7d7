/**
 * The built CLI (dist/src/cli.js, what the `hospital-bulk` bin runs) as a child process
 * against the real service listening on a real port, with the directory simulator behind
 * it. `npm test` builds first; when running jest directly, run `npm run build` before.
 * Hints the CLI prints are run as printed, by a shell, with `hospital-bulk` on its PATH.
 * On a terminal the CLI runs under `script` (util-linux, in every Debian), which gives it
 * a pseudo-terminal.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { directoryWaitText, progressBar } from '../src/cli/render.js';
import { writeWorkbook } from '../src/bulk/xlsxWrite.js';
import { closedPortUrl, finished, requestsTo, startStack, tempDir, type Finished, type Stack } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(root, 'dist/src/cli.js');
const NO_STACK_TRACE = /^\s+at /m;
const API_KEY = 'cli-test-key-0123456789abcdef';

/** Runs the CLI with a clean environment, so no HOSPITAL_BULK_* of the caller's shell leaks in. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<Finished> {
  return finished(spawn(process.execPath, [CLI, ...args], { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

const files = tempDir();
afterAll(() => files.remove());
function csvFile(name: string, content: string | Buffer): string {
  const path = join(files.path, name);
  writeFileSync(path, content);
  return path;
}

// `hospital-bulk` on a PATH, as `npm link` would put it, so a printed hint runs as printed.
const bin = join(files.path, 'bin');
mkdirSync(bin);
writeFileSync(join(bin, 'hospital-bulk'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`);
chmodSync(join(bin, 'hospital-bulk'), 0o755);

/** Runs a command line the CLI printed, through a shell, exactly as printed. */
async function runPrinted(commandLine: string, env: Record<string, string> = {}): Promise<Finished> {
  expect(commandLine).toMatch(/^hospital-bulk /);
  return finished(spawn('/bin/sh', ['-c', commandLine], { cwd: root, env: { PATH: `${bin}:${process.env.PATH ?? ''}`, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/**
 * Runs the CLI on a pseudo-terminal: stdin, stdout and stderr are all the terminal, so
 * the output is both, with CRLF line ends. `answer` is typed once the question is shown.
 */
async function onTerminal(args: string[], answer: string | null = null): Promise<{ code: number | null; screen: string; asked: boolean }> {
  const command = [process.execPath, CLI, ...args].map((word) => `'${word}'`).join(' ');
  const child = spawn('script', ['--quiet', '--return', '--command', command, '/dev/null'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', TERM: 'dumb' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let screen = '';
  let asked = false;
  child.stdout.on('data', (chunk: Buffer) => {
    screen += chunk.toString();
    if (!asked && screen.includes('[y/N] ')) {
      asked = true;
      if (answer !== null) child.stdin.write(answer);
    }
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, screen: screen.replace(/\r\n/g, '\n'), asked };
}

const csv = (rows: number, prefix = 'Hospital') =>
  ['name,address,phone', ...Array.from({ length: rows }, (_, i) => `${prefix} ${i + 1},${i + 1} Main St,555-01${String(i).padStart(2, '0')}`)].join('\n');

let stack: Stack | undefined;
let servers: Server[] = [];
let url = '';

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The real service on a real port, with the simulator behind it. */
async function serve(env: Record<string, string> = {}): Promise<void> {
  stack = await startStack({ sim: { createDelayMs: 20 }, env });
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
/** The command after `label` on its line (`next: <command>   or   …`). */
const printed = (text: string, label: string) => new RegExp(`^${label} (hospital-bulk .*?)(?: {3}or {3}.*)?$`, 'm').exec(text)?.[1] ?? `no "${label}" line`;
const batchesRecorded = async () => ((await (await fetch(`${url}/batches`)).json()) as { batches: unknown[] }).batches.length;

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
    expect(run.stdout).toMatch(/^next: hospital-bulk resume \S+ --url \S+ {3}or {3}hospital-bulk rollback \S+ --url \S+$/m);
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

  test('when the CSV is invalid, then it exits 1 with a row/line/column/message table, and nothing is created or recorded', async () => {
    await serve();
    const file = csvFile('bad.csv', 'name,address,phone\nGood Hospital,1 Road,\n ,2 Road,\nOther,,\n');

    const run = await at('upload', file);

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(lines(run.stderr)).toEqual([
      `hospital-bulk: ${file} has 2 problems; nothing was created.`,
      expect.stringMatching(/^row\s+line\s+column\s+message$/),
      expect.stringMatching(/^-+\s+-+\s+-+\s+-+$/),
      expect.stringMatching(/^2\s+3\s+name\s+name is required$/),
      expect.stringMatching(/^3\s+4\s+address\s+address is required$/),
    ]);
    expect(requestsTo(stack!.sim, 'create')).toEqual([]);
    expect(await batchesRecorded()).toBe(0);
  });

  test('when the CSV is invalid and --json is given, then stdout is the check\'s answer and it exits 1', async () => {
    await serve();

    const run = await at('upload', csvFile('bad-json.csv', 'name,address\n,1 Road\n'), '--json');

    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ valid: false, errors: [{ row: 1, line: 2, column: 'name' }] });
    expect(run.stderr).toBe('');
    expect(requestsTo(stack!.sim, 'create')).toEqual([]);
  });

  test('when rows repeat or already exist in the directory, then it shows each warning before creating (no terminal: no question)', async () => {
    await serve();
    await uploaded(csvFile('earlier.csv', csv(1)));
    const file = csvFile('warned.csv', `${csv(2)}\nhospital 2,2  main st,\n`);

    const run = await at('upload', file);

    expect(run.code).toBe(0);
    expect(lines(run.stderr).slice(0, 2).sort()).toEqual([
      'warning: Row 1: a hospital with this name and address already exists in the directory.',
      'warning: Row 3 repeats row 2 (same name and address).',
    ]);
    expect(run.stderr).not.toContain('[y/N]');
    expect(run.stdout).toMatch(/^batch \S+  completed  3 created, 0 failed of 3/m);
  });
});

describe('a file bigger than one directory batch (MAX_ROWS above 20)', () => {
  // A short rate window: the service's own pacing lets 30 creates through per window.
  const BIG = { MAX_ROWS: '45', UPSTREAM_RATE_WINDOW_MS: '500' };

  test('when 45 rows are uploaded, then the report lists the three directory batches with their rows, all activated, and stderr says as each is activated', async () => {
    await serve(BIG);

    const run = await at('upload', csvFile('forty-five.csv', csv(45)));

    expect(run.code).toBe(0);
    const batchId = /^batch (\S+)  completed  45 created, 0 failed of 45  activated yes/m.exec(run.stdout)?.[1];
    const report = (await (await fetch(`${url}/batches/${batchId}`)).json()) as { directory_batches: { id: string }[] };
    const ids = report.directory_batches.map((batch) => batch.id);
    expect(ids).toHaveLength(3);
    expect(ids[0]).toBe(batchId);
    for (const row of [1, 20, 21, 45]) expect(tableRow(run.stdout, row)).toMatch(new RegExp(`^${row}\\s+\\d+\\s+Hospital ${row}\\s+created_and_activated\\s+1\\s+-$`));
    const start = lines(run.stdout).findIndex((line) => /^directory batch\s+rows\s+activated$/.test(line));
    expect(lines(run.stdout).slice(start + 2, start + 5)).toEqual([
      expect.stringMatching(new RegExp(`^${ids[0]}\\s+1-20\\s+yes$`)),
      expect.stringMatching(new RegExp(`^${ids[1]}\\s+21-40\\s+yes$`)),
      expect.stringMatching(new RegExp(`^${ids[2]}\\s+41-45\\s+yes$`)),
    ]);
    // One line per row in order, then one per directory batch as it is activated (a pacing wait may add its own line).
    const progress = lines(run.stderr).filter((line) => !line.includes("the directory's rate limit"));
    expect(progress.slice(0, 45)).toEqual(Array.from({ length: 45 }, (_, i) => expect.stringMatching(new RegExp(`^\\[${i + 1}/45\\] row ${i + 1} created `))));
    expect(progress.slice(45)).toEqual(ids.map((id) => `directory batch ${id} activated`));
    expect(ids.map((id) => stack!.sim.hospitals().filter((h) => h.creation_batch_id === id && h.active).length)).toEqual([20, 20, 5]);
  });

  test('when 45 rows are uploaded on a terminal, then the bar fills in forty-fifths and is full only at 45/45', async () => {
    await serve(BIG);

    const run = await onTerminal(['upload', csvFile('forty-five-tty.csv', csv(45)), '--url', url, '--yes']);

    expect(run.code).toBe(0);
    expect(run.screen).toMatch(/\r\[#{20}\] 45\/45  done 45  failed 0  elapsed \d+:\d\d  eta 0:00/);
    const full = [...run.screen.matchAll(/\r\[#{20}\] (\d+)\/45/g)].map((match) => match[1]);
    expect(new Set(full)).toEqual(new Set(['45']));
    expect(run.screen).toMatch(/^directory batch\s+rows\s+activated$/m);
    expect(run.screen).toMatch(/^batch \S+  completed  45 created, 0 failed of 45  activated yes/m);
  });
});

describe('upload on a terminal', () => {
  test('when the question is answered y, then the batch is created with a progress bar drawn in place', async () => {
    await serve();
    const file = csvFile('asked.csv', csv(2));

    const run = await onTerminal(['upload', file, '--url', url], 'y\n');

    expect(run.asked).toBe(true);
    expect(run.screen).toContain(`Create 2 hospitals from ${file} in the directory? [y/N] `);
    expect(run.screen).toMatch(/\r\[#{20}\] 2\/2  done 2  failed 0  elapsed \d+:\d\d  eta 0:00/);
    expect(run.screen).toMatch(/^batch \S+  completed  2 created, 0 failed of 2/m);
    expect(run.code).toBe(0);
    expect(stack!.sim.hospitals()).toHaveLength(2);
  });

  test('when the question is answered n (or just Enter), then nothing is created, it exits 1 and says how to skip the question', async () => {
    await serve();
    const file = csvFile('declined.csv', `${csv(2)}\nHospital 2,2 Main St,\n`);

    const no = await onTerminal(['upload', file, '--url', url], 'n\n');
    const enter = await onTerminal(['upload', file, '--url', url], '\n');

    for (const run of [no, enter]) {
      expect(run.code).toBe(1);
      expect(run.screen).toContain('warning: Row 3 repeats row 2 (same name and address).\n');
      expect(run.screen).toContain(`Create 3 hospitals from ${file} in the directory despite 1 warning? [y/N] `);
      expect(run.screen).toContain(`hospital-bulk: nothing was created (to skip this question: hospital-bulk upload ${file} --yes --url ${url})\n`);
    }
    expect(requestsTo(stack!.sim, 'create')).toEqual([]);
    expect(await batchesRecorded()).toBe(0);
  });

  test('when --yes or --json is given, then it never asks', async () => {
    await serve();

    const yes = await onTerminal(['upload', csvFile('yes.csv', csv(1, 'Yes')), '--url', url, '--yes']);
    const json = await onTerminal(['upload', csvFile('json-tty.csv', csv(1, 'Json')), '--url', url, '--json']);

    expect([yes.asked, json.asked]).toEqual([false, false]);
    expect([yes.code, json.code]).toEqual([0, 0]);
    expect(stack!.sim.hospitals().map((h) => h.name)).toEqual(['Yes 1', 'Json 1']);
  });
});

describe('check', () => {
  test('when the file is valid, then it exits 0, creates and records nothing, and its upload hint works as printed', async () => {
    await serve();
    const file = csvFile('good.csv', csv(3));

    const run = await at('check', file);

    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(lines(run.stdout)).toEqual([`${file}: 3 rows, 0 problems, 0 warnings`, `Nothing was created. To create them: hospital-bulk upload ${file} --url ${url}`]);
    expect(requestsTo(stack!.sim, 'create')).toEqual([]);
    expect(await batchesRecorded()).toBe(0);

    const hinted = await runPrinted(printed(run.stdout, 'Nothing was created. To create them:'));

    expect(hinted.code).toBe(0);
    expect(stack!.sim.hospitals()).toHaveLength(3);
  });

  test('when the file has problems and warnings, then it exits 1 with the problems table, each warning, and a check hint', async () => {
    await serve();
    const file = csvFile('mixed.csv', 'name,address,phone\nClinic,3 Road,\n ,2 Road,\nclinic,3  road,\n');

    const run = await at('check', file);

    expect(run.code).toBe(1);
    expect(lines(run.stdout)).toEqual([
      `${file}: 3 rows, 1 problem, 1 warning`,
      expect.stringMatching(/^row\s+line\s+column\s+message$/),
      expect.stringMatching(/^-+/),
      expect.stringMatching(/^2\s+3\s+name\s+name is required$/),
      'warning: Row 3 repeats row 1 (same name and address).',
      `Nothing can be created from this file until the problems are fixed; then: hospital-bulk check ${file} --url ${url}`,
    ]);
    expect(requestsTo(stack!.sim, 'create')).toEqual([]);
  });

  test('when --json is given, then stdout is exactly what POST /hospitals/bulk/validate answers, and the exit code still tells', async () => {
    await serve();
    const content = 'name,address\nA,1 Road\n,2 Road\n';
    const file = csvFile('check.csv', content);

    const run = await at('check', file, '--json');

    expect(run.code).toBe(1);
    const form = new FormData();
    form.append('file', new Blob([content], { type: 'text/csv' }), 'check.csv');
    expect(JSON.parse(run.stdout)).toEqual(await (await fetch(`${url}/hospitals/bulk/validate`, { method: 'POST', body: form })).json());
  });
});

describe('history and actions', () => {
  test('when batches are listed, then the table shows them newest first, and --limit pages with the cursor it prints', async () => {
    await serve();
    const first = await uploaded(csvFile('first.csv', csv(1, 'First')));
    const second = await uploaded(csvFile('second.csv', csv(2, 'Second')));

    const all = await at('batches');
    const page = await at('batches', '--limit', '1');
    const next = await runPrinted(printed(page.stdout, 'more:'));

    expect(all.code).toBe(0);
    expect(lines(all.stdout)).toEqual([
      expect.stringMatching(/^batch id\s+file\s+status\s+created\s+activated\s+created at$/),
      expect.stringMatching(/^-+/),
      expect.stringMatching(new RegExp(`^${second.batch_id}\\s+second\\.csv\\s+completed\\s+2/2\\s+yes\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$`)),
      expect.stringMatching(new RegExp(`^${first.batch_id}\\s+first\\.csv\\s+completed\\s+1/1\\s+yes\\s`)),
    ]);
    expect(page.stdout).toContain(second.batch_id);
    expect(page.stdout).not.toContain(first.batch_id);
    expect(page.stdout).toMatch(new RegExp(`^more: hospital-bulk batches --limit 1 --cursor \\S+ --url ${url}$`, 'm'));
    expect(next.code).toBe(0);
    expect(next.stdout).toContain(first.batch_id);
    expect(next.stdout).not.toContain(second.batch_id);
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

  test('when a queued batch is cancelled, then it exits 0 with status cancelled and the resume hint', async () => {
    await serve();
    const id = '0b7c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55';
    await stack!.deps.store.admitBatch(
      { id, filename: 'queued.csv', fileSha256: 'x', idempotencyKey: null, rows: [{ row: 1, line: 2, name: 'A', address: 'B', phone: null }] },
      { maxActive: 5 },
    );

    const run = await at('cancel', id);

    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`batch ${id}  cancelled`);
    expect(run.stdout).toMatch(/next: .*resume.*rollback/);
  });

  test('when a completed batch is resumed, then it exits 1 with the 409 detail on stderr', async () => {
    await serve();
    const { batch_id: id } = await uploaded(csvFile('done.csv', csv(1)));

    const run = await at('resume', id);

    expect(run).toEqual({ code: 1, stdout: '', stderr: 'hospital-bulk: 409 The batch is completed; only a failed, interrupted or cancelled batch can be resumed.\n' });
  });

  test('when a failed batch is resumed as its hint says, then it exits 0 with the batch completed', async () => {
    await serve();
    // A failure the directory may heal (a rejected row is never re-sent unchanged): every
    // attempt of both rows answers 503, so the batch fails and its hint has work to do.
    stack!.sim.inject('create', { kind: 'status', status: 503 }, 2 * Number(stack!.config.UPSTREAM_MAX_ATTEMPTS));
    const failed = await at('upload', csvFile('resume.csv', csv(2)));

    const run = await runPrinted(printed(failed.stdout, 'next:'));

    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^batch \S+  completed  2 created, 0 failed of 2  activated yes/m);
  });

  test('when a failed batch is rolled back as its hint says, then it exits 0 with the batch rolled back', async () => {
    await serve();
    stack!.sim.inject('create', { kind: 'status', status: 400, body: { detail: 'Refused' } });
    const failed = await at('upload', csvFile('roll-back-hint.csv', csv(2)));

    const run = await runPrinted(/ {3}or {3}(hospital-bulk rollback .*)$/m.exec(failed.stdout)?.[1] ?? 'no rollback hint');

    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^batch \S+  rolled_back/m);
  });
});

describe('resume progress', () => {
  /** A 3-row batch whose row 2 met a directory that answered 503 on every attempt (row 3 goes between the first two). */
  async function failedOnRow2(): Promise<string> {
    await serve();
    stack!.sim.inject('create', { kind: 'pass' });
    stack!.sim.inject('create', { kind: 'status', status: 503 });
    stack!.sim.inject('create', { kind: 'pass' });
    stack!.sim.inject('create', { kind: 'status', status: 503 }, Number(stack!.config.UPSTREAM_MAX_ATTEMPTS) - 1);
    const failed = await uploaded(csvFile('flaky.csv', csv(3)));
    expect(failed.status).toBe('failed');
    return failed.batch_id;
  }

  test('when a failed batch is resumed without a terminal, then stderr has one line per row of this run only, and stdout the report', async () => {
    const id = await failedOnRow2();

    const run = await at('resume', id);

    expect(run.code).toBe(0);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^\[3\/3\] row 2 created \(hospital \d+, attempts \d+\)$/)]);
    expect(run.stdout).toContain(`batch ${id}  completed  3 created, 0 failed of 3  activated yes`);
  });

  test('when a failed batch is resumed on a terminal, then the progress bar is drawn in place and ends full', async () => {
    const id = await failedOnRow2();

    const run = await onTerminal(['resume', id, '--url', url]);

    expect(run.code).toBe(0);
    // It starts from the rows the first run created.
    expect(run.screen).toMatch(/^\r\[#{13}-{7}\] 2\/3  done 2  failed 0/);
    expect(run.screen).toMatch(/\r\[#{20}\] 3\/3  done 3  failed 0  elapsed \d+:\d\d  eta 0:00\x1b\[K\n\n/);
    expect(run.screen).toContain(`batch ${id}  completed  3 created, 0 failed of 3`);
  });

  test('when --json is given, then stdout is only the report and stderr stays empty', async () => {
    const id = await failedOnRow2();

    const run = await at('resume', id, '--json');

    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toMatchObject({ batch_id: id, status: 'completed' });
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
    [['check'], /^hospital-bulk: check needs a CSV file; see hospital-bulk --help$/],
    [['show', 'x', '--yes'], /^hospital-bulk: --yes only applies to the upload command; see hospital-bulk --help$/],
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
    for (const word of ['upload <file.csv>', 'batches', 'show <batch-id>', 'resume <batch-id>', 'rollback <batch-id>', '--url', '--api-key', '--json', '--limit', 'check <file.csv>', '--yes', 'HOSPITAL_BULK_API_KEY', 'HOSPITAL_BULK_URL']) {
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

describe('API key', () => {
  test('when the service needs a key and none is given, then it exits 1 naming --api-key and HOSPITAL_BULK_API_KEY', async () => {
    await serve({ API_KEY });

    const listing = await at('batches');
    const check = await at('check', csvFile('keyless.csv', csv(1)));

    for (const run of [listing, check]) {
      expect(run).toEqual({ code: 1, stdout: '', stderr: `hospital-bulk: 401 ${url} needs an API key: pass --api-key <key>, or set HOSPITAL_BULK_API_KEY\n` });
    }
  });

  test('when the key is wrong, then it exits 1 saying where the refused key came from, without showing it', async () => {
    await serve({ API_KEY });

    const option = await at('batches', '--api-key', 'wrong-key-from-option');
    const variable = await cli(['batches', '--url', url], { HOSPITAL_BULK_API_KEY: 'wrong-key-from-env' });

    expect(option).toEqual({ code: 1, stdout: '', stderr: `hospital-bulk: 401 ${url} refused the API key given with --api-key: check the key (--api-key <key>, or HOSPITAL_BULK_API_KEY)\n` });
    expect(variable).toEqual({ code: 1, stdout: '', stderr: `hospital-bulk: 401 ${url} refused the API key given with HOSPITAL_BULK_API_KEY: check the key (--api-key <key>, or HOSPITAL_BULK_API_KEY)\n` });
  });

  test('when the key was given with --api-key, then hints read it from HOSPITAL_BULK_API_KEY, never show it, and work as printed once it is set', async () => {
    await serve({ API_KEY });
    stack!.sim.inject('create', { kind: 'status', status: 503 }, 2 * Number(stack!.config.UPSTREAM_MAX_ATTEMPTS)); // every attempt of both rows

    const run = await at('upload', csvFile('keyed.csv', csv(2)), '--api-key', API_KEY);

    expect(run.code).toBe(1);
    expect(`${run.stdout}${run.stderr}`).not.toContain(API_KEY);
    expect(printed(run.stdout, 'next:')).toMatch(new RegExp(`^hospital-bulk resume \\S+ --url ${url} --api-key "\\$HOSPITAL_BULK_API_KEY"$`));
    expect(lines(run.stderr).at(-1)).toBe('hospital-bulk: the commands above read the key from HOSPITAL_BULK_API_KEY: set it first (export HOSPITAL_BULK_API_KEY=<your key>)');

    const resumed = await runPrinted(printed(run.stdout, 'next:'), { HOSPITAL_BULK_API_KEY: API_KEY });

    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/^batch \S+  completed/m);
  });

  test('when the key comes from HOSPITAL_BULK_API_KEY, then hints need nothing more and work as printed in the same environment', async () => {
    await serve({ API_KEY });
    stack!.sim.inject('create', { kind: 'status', status: 503 }, 2 * Number(stack!.config.UPSTREAM_MAX_ATTEMPTS)); // every attempt of both rows
    const env = { HOSPITAL_BULK_API_KEY: API_KEY };

    const run = await cli(['upload', csvFile('env-keyed.csv', csv(2)), '--url', url], env);
    const resumed = await runPrinted(printed(run.stdout, 'next:'), env);

    expect(printed(run.stdout, 'next:')).toMatch(new RegExp(`^hospital-bulk resume \\S+ --url ${url}$`));
    expect(run.stderr).not.toContain('HOSPITAL_BULK_API_KEY');
    expect(resumed.code).toBe(0);
  });
});

describe('a server that is not hospital-bulk', () => {
  const htmlServer = (status: number) =>
    createServer((_req, res) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>Hello</title><p>Hello');
    });

  test('when an express app answers 404 with HTML, then it exits 1 saying the URL does not look like hospital-bulk', async () => {
    const other = await listen(createServer(express()));

    const listing = await cli(['batches', '--url', other]);
    const check = await cli(['check', csvFile('elsewhere.csv', csv(1)), '--url', other]);

    expect(listing).toEqual({ code: 1, stdout: '', stderr: `hospital-bulk: ${other} does not look like a hospital-bulk service: GET /batches answered 404 (text/html); check --url\n` });
    expect(check.stderr).toBe(`hospital-bulk: ${other} does not look like a hospital-bulk service: POST /hospitals/bulk/validate answered 404 (text/html); check --url\n`);
  });

  test('when --url points at the directory simulator, then it says so instead of a bare 404', async () => {
    await serve();

    const run = await cli(['show', '6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55', '--url', stack!.sim.url]);

    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: `hospital-bulk: ${stack!.sim.url} does not look like a hospital-bulk service: GET /batches/6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55 answered 404 (application/json); check --url\n`,
    });
  });

  test('when a server answers 200 with a page to everything, then it is recognised too', async () => {
    const other = await listen(htmlServer(200));

    const run = await cli(['batches', '--url', other]);

    expect(run).toEqual({ code: 1, stdout: '', stderr: `hospital-bulk: ${other} does not look like a hospital-bulk service: GET /batches answered 200 with an answer of another shape (text/html); check --url\n` });
  });

  test('when a proxy answers 502 with its own page, then it says the service is probably down or starting', async () => {
    const proxy = await listen(htmlServer(502));

    const run = await cli(['batches', '--url', proxy]);

    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: `hospital-bulk: ${proxy} did not answer as hospital-bulk: GET /batches answered 502 (text/html), probably from a proxy in front of a service that is down or starting; try again in a minute\n`,
    });
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
        if (req.method === 'POST' && req.url === '/hospitals/bulk/validate') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ valid: true, total_rows: 2, rows: [], errors: [], warnings: [] }));
          return;
        }
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
    expect(run.stderr).toBe(`hospital-bulk: lost the connection to ${service.url} (the event stream ended before the report); the batch goes on: hospital-bulk show ${ID} --url ${service.url}\n`);
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
    // On a big file the bar is full only when every row is finished.
    expect(progressBar({ done: 43, failed: 1, total: 45, elapsedSeconds: 95, etaSeconds: 2 })).toBe(
      '[###################-] 44/45  done 43  failed 1  elapsed 1:35  eta 0:02',
    );
    expect(progressBar({ done: 1000, failed: 0, total: 1000, elapsedSeconds: 2010, etaSeconds: 0 })).toBe(
      '[####################] 1000/1000  done 1000  failed 0  elapsed 33:30  eta 0:00',
    );
    expect(progressBar({ done: 0, failed: 0, total: 5, elapsedSeconds: 3725, etaSeconds: null })).toBe(
      '[--------------------] 0/5  done 0  failed 0  elapsed 1:02:05  eta -:--',
    );
  });
});
