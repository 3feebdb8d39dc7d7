import request from 'supertest';
import type { RecordedRequest } from '../simulator/simulator.js';
import { requestsTo, startStack, type Stack } from './helpers.js';

let stack: Stack;
afterEach(async () => stack?.close());

const upload = (rows: string[]) =>
  request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(['name,address,phone', ...rows].join('\n')), 'lost.csv');

/** A row of the CSV; rows with the same name are identical (twins). */
const row = (name: string) => `${name},1 Main St,555-0100`;

interface ReportRow {
  row: number;
  name: string;
  status: string;
  hospital_id: number | null;
}

const nameOf = (r: RecordedRequest) => (r.body as { name: string }).name;

/** Exactly one hospital per row, each with that row's values, and the report in file order. */
function expectOneHospitalPerRow(names: string[], report: { hospitals: ReportRow[] }) {
  expect(report.hospitals.map((h) => [h.row, h.name])).toEqual(names.map((name, i) => [i + 1, name]));
  const ids = report.hospitals.map((h) => h.hospital_id);
  expect(new Set(ids).size).toBe(names.length);
  const stored = new Map(stack.sim.hospitals().map((h) => [h.id, h]));
  expect(stored.size).toBe(names.length);
  for (const h of report.hospitals) expect(stored.get(h.hospital_id!)?.name).toBe(h.name);
}

describe.each([
  ['row by row', '1'],
  ['at concurrency 4', '4'],
])('lost answers, %s', (_, concurrency) => {
  const start = (env: Record<string, string> = {}) =>
    startStack({ sim: { createDelayMs: 10 }, env: { UPSTREAM_CONCURRENCY: concurrency, UPSTREAM_SETTLE_MS: '200', ...env } });

  test('when answers are lost in the middle and at the end, twins among them, then each row has exactly one hospital, in file order, and nothing is re-sent', async () => {
    stack = await start();
    const names = ['A', 'B', 'A', 'C', 'C', 'D'];
    // Creates 3 and 6 to arrive (at concurrency 4: whichever rows they are) lose their answers; the last one is the last row to be sent.
    stack.sim.inject('create', { kind: 'pass' }, 2);
    stack.sim.inject('create', { kind: 'lose-response' });
    stack.sim.inject('create', { kind: 'pass' }, 2);
    stack.sim.inject('create', { kind: 'lose-response' });

    const res = await upload(names.map(row));

    expect(res.body).toMatchObject({ status: 'completed', processed_hospitals: 6, batch_activated: true });
    expectOneHospitalPerRow(names, res.body);
    expect(requestsTo(stack.sim, 'create')).toHaveLength(6);
    expect(stack.sim.hospitals().every((h) => h.active)).toBe(true);
  });

  test('when a twin\'s answer is lost, then its identical row is not sent until the lost one is settled by a batch read', async () => {
    stack = await start();
    const names = ['A', 'A', 'B', 'A'];
    stack.sim.inject('create', { kind: 'lose-response' });

    const res = await upload(names.map(row));

    expect(res.body.status).toBe('completed');
    expectOneHospitalPerRow(names, res.body);
    const creates = requestsTo(stack.sim, 'create');
    const lost = creates[0]!;
    expect(nameOf(lost)).toBe('A');
    const firstRead = requestsTo(stack.sim, 'batch')[0]!;
    expect(firstRead.receivedAt).toBeGreaterThanOrEqual(lost.receivedAt);
    for (const twin of creates.slice(1).filter((r) => nameOf(r) === 'A')) expect(twin.receivedAt).toBeGreaterThanOrEqual(firstRead.receivedAt);
  });

  test('when a lost create never landed, then it is re-sent exactly once, and not before the settle time since its loss', async () => {
    const SETTLE_MS = 300;
    stack = await start({ UPSTREAM_SETTLE_MS: String(SETTLE_MS) });
    const names = ['A', 'B', 'C'];
    // The second create to arrive is dropped before the directory reads it: nothing is stored.
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'reset' });

    const res = await upload(names.map(row));

    expect(res.body).toMatchObject({ status: 'completed', processed_hospitals: 3 });
    expectOneHospitalPerRow(names, res.body);
    const creates = requestsTo(stack.sim, 'create');
    expect(creates).toHaveLength(4);
    // The reset came before the directory read the body, so the log knows the lost row by its report: two attempts.
    const lost = creates[1]!;
    expect(lost.body).toBeNull();
    const resent = res.body.hospitals.filter((h: ReportRow & { attempts: number }) => h.attempts === 2);
    expect(resent).toHaveLength(1);
    const again = creates.filter((r) => r.body !== null && nameOf(r) === resent[0].name);
    expect(again).toHaveLength(1);
    // The reset happened as the request arrived: the re-send came a full settle time later.
    expect(again[0]!.receivedAt - lost.receivedAt).toBeGreaterThanOrEqual(SETTLE_MS);
    expect(resent[0]).toMatchObject({ status: 'created_and_activated' });
  });

  test('when every create times out and lands later, then each is adopted from the batch, none re-sent, and the batch completes', async () => {
    stack = await startStack({
      sim: { createDelayMs: 300 },
      env: { UPSTREAM_CONCURRENCY: concurrency, UPSTREAM_TIMEOUT_MS: '100', UPSTREAM_SETTLE_MS: '2000' },
    });
    const names = ['A', 'B', 'A'];

    const res = await upload(names.map(row));

    expect(res.body).toMatchObject({ status: 'completed', processed_hospitals: 3, batch_activated: true });
    expectOneHospitalPerRow(names, res.body);
    expect(requestsTo(stack.sim, 'create')).toHaveLength(3);
    expect(res.body.hospitals.map((h: { attempts: number }) => h.attempts)).toEqual([1, 1, 1]);
  });
});
