/**
 * Blank means what the directory means: for strings built from Unicode whitespace (Python's
 * and JavaScript's, which differ) and letters, our blank check, the simulator's answer over
 * HTTP and a direct transcription of CONTRACT.md's rule agree; and a row our CSV rules
 * accept is one the simulator accepts, with the value we would send.
 */
import fc from 'fast-check';
import request from 'supertest';
import { inspectUpload, readUpload } from '../src/bulk/read.js';
import { writeWorkbook } from '../src/bulk/xlsxWrite.js';
import { isBlank, strip } from '../src/bulk/whitespace.js';
import { startSimulator, startStack, type Stack } from './helpers.js';
import type { Simulator } from '../simulator/simulator.js';

/** CONTRACT.md, word for word: Python's `not value.strip()`, with str.isspace() true for exactly these. */
const CONTRACT_WHITESPACE = [
  '\t', '\n', '\u000b', '\f', '\r', ' ',
  '\u001c', '\u001d', '\u001e', '\u001f',
  '\u0085', '\u00a0', '\u1680',
  ...Array.from({ length: 11 }, (_, i) => String.fromCharCode(0x2000 + i)),
  '\u2028', '\u2029', '\u202f', '\u205f', '\u3000',
];
const pythonBlank = (value: string) => [...value].every((c) => CONTRACT_WHITESPACE.includes(c));

/** Python's whitespace, JavaScript's that Python keeps (U+FEFF) and near misses (U+200B, U+180E, U+0000-adjacent controls). */
const character = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...CONTRACT_WHITESPACE) },
  { weight: 2, arbitrary: fc.constantFrom('\uFEFF', '\u200b', '\u180e', '\u0001', '\u001b', '\u0084', '\u0086', '\u2060') },
  { weight: 2, arbitrary: fc.constantFrom('a', 'Z', 'é', '北') },
);
const text = fc.array(character, { maxLength: 6 }).map((chars) => chars.join(''));

let sim: Simulator;
beforeAll(async () => {
  sim = await startSimulator({ createDelayMs: 0 });
});
afterAll(async () => sim.close());

async function simulatorRefuses(name: string): Promise<boolean> {
  const res = await fetch(`${sim.url}/hospitals/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, address: 'x', phone: null }),
  });
  await res.arrayBuffer();
  if (res.status !== 200 && res.status !== 422) throw new Error(`the simulator answered ${res.status}`);
  return res.status === 422;
}

test('when a value is any mix of whitespace and letters, then our blank check, the simulator and Python\'s rule agree', async () => {
  await fc.assert(
    fc.asyncProperty(text, async (value) => {
      expect(isBlank(value)).toBe(pythonBlank(value));
      expect(await simulatorRefuses(value)).toBe(pythonBlank(value));
      // Stripping never turns a value into one the directory judges differently.
      expect(pythonBlank(strip(value))).toBe(pythonBlank(value));
    }),
    { numRuns: 300 },
  );
});

test('when our CSV rules accept a row, then the simulator accepts the name we would send; when they refuse it as blank, so does the simulator', async () => {
  await fc.assert(
    fc.asyncProperty(text, async (value) => {
      const csv = Buffer.from(`name,address\n"${value.replaceAll('"', '""')}",1 Main St\n`, 'utf8');

      const read = await readUpload(csv, { maxRows: 20 }).then(
        ({ rows }) => ({ rows }),
        (error: unknown) => ({ error }),
      );

      if ('rows' in read) {
        expect(await simulatorRefuses(read.rows[0]!.name)).toBe(false);
        expect(pythonBlank(value)).toBe(false);
      } else {
        expect(pythonBlank(value)).toBe(true);
        expect(await simulatorRefuses(value)).toBe(true);
      }
    }),
    { numRuns: 300 },
  );
});

describe('over HTTP', () => {
  let stack: Stack;
  afterEach(async () => stack?.close());

  test.each([
    ['U+001C–U+001F', '\u001c\u001d\u001e\u001f'],
    ['U+0085 (next line)', '\u0085'],
  ])('when a name is only %s, then the upload is refused 400 "name is required" and the dry run says the same; the directory receives nothing', async (_label, name) => {
    stack = await startStack();
    const csv = Buffer.from(`name,address\nGood,1 Main St\n"${name}",2 High St\n`, 'utf8');
    const required = { row: 2, line: 3, column: 'name', message: 'Line 3: name is required' };

    const upload = await request(stack.app).post('/hospitals/bulk').attach('file', csv, 'h.csv');
    const dryRun = await request(stack.app).post('/hospitals/bulk/validate').attach('file', csv, 'h.csv');

    expect(upload.status).toBe(400);
    expect(upload.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(upload.body).toMatchObject({ status: 400, detail: 'The CSV has 1 problem; nothing was created.', errors: [required] });
    expect(dryRun.status).toBe(200);
    expect(dryRun.body).toMatchObject({ valid: false, errors: [required] });
    // The dry run reads the directory once to look for duplicates; nothing is created.
    expect(stack.sim.requests.filter((r) => r.method !== 'GET')).toEqual([]);
    expect((await request(stack.app).get('/batches')).body).toEqual({ batches: [], next_cursor: null });
  });

  test('when a name is only U+FEFF (which Python keeps), then it is sent as written and the directory creates it', async () => {
    stack = await startStack();

    const res = await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from('name,address\n\uFEFF,1 Main St\n', 'utf8'), 'h.csv');

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'completed', hospitals: [{ name: '\uFEFF', status: 'created_and_activated' }] });
    expect(stack.sim.hospitals()).toEqual([expect.objectContaining({ name: '\uFEFF', address: '1 Main St' })]);
  });
});

describe('in workbooks and header names', () => {
  test('when workbook cells or header names hold Python-only whitespace, then they are blank exactly as in a CSV: U+001C–U+001F and U+0085 strip, U+FEFF stays', async () => {
    const rows = [
      ['\u001fHospital Name\u0085', 'address\u001c'],
      ['\u001c\u001d\u0085', '1 Main St'],
      ['\uFEFF', '2 High St\u001e'],
    ];
    const csv = Buffer.from(rows.map((r) => r.map((v) => `"${v}"`).join(',')).join('\n'), 'utf8');
    for (const file of [writeWorkbook(rows), csv]) {
      const read = await inspectUpload(file, { maxRows: 20 });
      expect(read.format.columns).toEqual([
        { header: 'Hospital Name', field: 'name' },
        { header: 'address', field: 'address' },
      ]);
      expect(read.rows.map(({ row, name, address }) => ({ row, name, address }))).toEqual([
        { row: 1, name: '', address: '1 Main St' },
        { row: 2, name: '\uFEFF', address: '2 High St' },
      ]);
      expect(read.problems).toEqual([expect.objectContaining({ row: 1, column: 'name', message: expect.stringMatching(/name is required$/) })]);
    }
  });
});
