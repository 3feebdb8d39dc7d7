import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { parseSse, requestsTo, startStack, type Stack } from './helpers.js';

/**
 * Fix and finish: a row the directory rejected is corrected through PATCH
 * /batches/:id/rows/:row and the batch resumed to completion, without a re-upload and
 * without a duplicate; a resume never re-sends a rejected row unchanged.
 */

const THREE_ROWS = 'name,address,phone\nGeneral Hospital,1 Main St,555-0100\nClinic,2 Oak Ave,\nMercy,3 Elm Rd,555-0199\n';
const REJECTION = { detail: [{ type: 'string_too_short', loc: ['body', 'address'], msg: 'Address not recognised' }] };

let stack: Stack;
afterEach(async () => stack?.close());

const patchRow = (batchId: string, row: number | string, body: unknown) =>
  request(stack.app).patch(`/batches/${batchId}/rows/${row}`).set('Content-Type', 'application/json').send(JSON.stringify(body));

/** Uploads three rows; the directory refuses row 2 with a 422. */
async function batchWithRejectedRow(): Promise<string> {
  stack.sim.inject('create', { kind: 'pass' });
  stack.sim.inject('create', { kind: 'status', status: 422, body: REJECTION });
  const res = await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(THREE_ROWS), 'h.csv');
  expect(res.body).toMatchObject({ status: 'failed', failed_hospitals: 1 });
  expect(res.body.hospitals[1]).toMatchObject({ row: 2, status: 'failed', error_message: expect.stringMatching(/^Rejected by the directory \(HTTP 422\)/) });
  return res.body.batch_id as string;
}

const createsOf = (name: string) => requestsTo(stack.sim, 'create').filter((r) => (r.body as { name?: string } | undefined)?.name === name);

describe('PATCH /batches/:id/rows/:row', () => {
  beforeEach(async () => {
    stack = await startStack({ env: { UPSTREAM_MAX_ATTEMPTS: '2' } });
  });

  test('when a rejected row is corrected and the batch resumed, then it completes with exactly one hospital per row, the row sent twice in all', async () => {
    const id = await batchWithRejectedRow();
    expect((await stack.deps.store.findRows(id)).map((row) => row.rejected)).toEqual([false, true, false]);

    const edited = await patchRow(id, 2, { name: 'Clinic of Leith', address: '  12 Harbour Road  ' });

    expect(edited.status).toBe(200);
    expect(edited.body).toMatchObject({ batch_id: id, status: 'failed', failed_hospitals: 0, processed_hospitals: 2 });
    expect(edited.body.hospitals[1]).toEqual({
      row: 2,
      hospital_id: null,
      name: 'Clinic of Leith',
      address: '12 Harbour Road',
      phone: null,
      status: 'pending',
      error_message: null,
      attempts: 1,
    });
    expect((await stack.deps.store.findRows(id))[1]!.rejected).toBe(false);

    const resumed = await request(stack.app).post(`/batches/${id}/resume`);

    expect(resumed.body).toMatchObject({ status: 'completed', batch_activated: true, processed_hospitals: 3, failed_hospitals: 0 });
    const upstream = stack.sim.hospitals().filter((h) => h.creation_batch_id === id);
    expect(upstream.map((h) => [h.name, h.address, h.active]).sort()).toEqual([
      ['Clinic of Leith', '12 Harbour Road', true],
      ['General Hospital', '1 Main St', true],
      ['Mercy', '3 Elm Rd', true],
    ]);
    expect(createsOf('Clinic')).toHaveLength(1);
    expect(createsOf('Clinic of Leith')).toHaveLength(1);
    expect(requestsTo(stack.sim, 'create')).toHaveLength(4);
  });

  test('when a rejected row is resumed without an edit, then it is not sent again and stays failed with its reason', async () => {
    const id = await batchWithRejectedRow();
    const sentBefore = requestsTo(stack.sim, 'create').length;

    const resumed = await request(stack.app).post(`/batches/${id}/resume`);

    expect(resumed.body).toMatchObject({ status: 'failed', batch_activated: false, processed_hospitals: 2, failed_hospitals: 1 });
    expect(resumed.body.hospitals[1]).toMatchObject({ status: 'failed', attempts: 1, error_message: expect.stringMatching(/^Rejected by the directory \(HTTP 422\)/) });
    expect(requestsTo(stack.sim, 'create')).toHaveLength(sentBefore);
    expect(createsOf('Clinic')).toHaveLength(1);
  });

  test('when a value breaks an upload rule, then 400 names the field and nothing changes', async () => {
    const id = await batchWithRejectedRow();
    const before = (await request(stack.app).get(`/batches/${id}`)).body;
    const eventsBefore = parseSse((await request(stack.app).get(`/batches/${id}/events`)).text).length;

    const blank = await patchRow(id, 2, { name: '\u00a0 \t', address: 'New Road' });
    const long = await patchRow(id, 2, { address: 'x'.repeat(256) });
    // Python's strip, as the directory's: U+0085 alone is blank (JavaScript's trim keeps it).
    const python = await patchRow(id, 2, { address: '\u0085' });

    expect(blank.status).toBe(400);
    expect(blank.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(blank.body).toMatchObject({
      detail: 'Row 2: name is required. Nothing was changed.',
      errors: [{ row: 2, line: null, column: 'name', message: 'Row 2: name is required' }],
    });
    expect(long.status).toBe(400);
    expect(long.body.errors).toEqual([{ row: 2, line: null, column: 'address', message: 'Row 2: address is 256 characters long; at most 255 characters are allowed' }]);
    expect(python.status).toBe(400);
    expect(python.body.errors[0].message).toBe('Row 2: address is required');
    expect((await request(stack.app).get(`/batches/${id}`)).body).toEqual(before);
    expect(parseSse((await request(stack.app).get(`/batches/${id}/events`)).text)).toHaveLength(eventsBefore);
    expect((await stack.deps.store.findRows(id))[1]!.rejected).toBe(true);
  });

  test('when the body is malformed, then 400 or 415 says what to send', async () => {
    const id = await batchWithRejectedRow();

    const unknown = await patchRow(id, 2, { name: 'A', city: 'Leith' });
    const notString = await patchRow(id, 2, { name: 42 });
    const empty = await patchRow(id, 2, {});
    const array = await patchRow(id, 2, ['A']);
    const badRow = await patchRow(id, 'two', { name: 'A' });
    const notJson = await request(stack.app).patch(`/batches/${id}/rows/2`).type('form').send('name=A');
    const brokenJson = await request(stack.app).patch(`/batches/${id}/rows/2`).set('Content-Type', 'application/json').send('{"name":');

    expect([unknown, notString, empty, array, badRow, brokenJson].map((res) => res.status)).toEqual([400, 400, 400, 400, 400, 400]);
    expect(unknown.body.detail).toBe('Unknown field "city": a row has name, address and phone.');
    expect(notString.body.detail).toBe('name must be a string.');
    expect(empty.body.detail).toBe('Send at least one of name, address and phone.');
    expect(array.body.detail).toBe('Send the row as a JSON object: {"name": …, "address": …, "phone": …}.');
    expect(badRow.body.detail).toBe('The row must be a data row number: a whole number from 1.');
    expect(notJson.status).toBe(415);
    expect(notJson.body.detail).toMatch(/Content-Type: application\/json/);
    expect((await stack.deps.store.findRows(id))[1]).toMatchObject({ name: 'Clinic', status: 'failed', rejected: true });
  });

  test('when the values are the ones the directory rejected, then 400 asks for a change', async () => {
    const id = await batchWithRejectedRow();

    const same = await patchRow(id, 2, { name: ' Clinic ', address: '2 Oak Ave' });

    expect(same.status).toBe(400);
    expect(same.body.detail).toMatch(/^Row 2 already has these values, and the directory rejected them \(Rejected by the directory \(HTTP 422\)/);
    expect((await stack.deps.store.findRows(id))[1]).toMatchObject({ status: 'failed', rejected: true });
  });

  test('when the row is created, then 409 with its status; unknown rows and batches are 404', async () => {
    const id = await batchWithRejectedRow();

    const created = await patchRow(id, 1, { name: 'Renamed' });
    const noRow = await patchRow(id, 4, { name: 'A' });
    const noBatch = await patchRow('6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55', 1, { name: 'A' });

    expect(created.status).toBe(409);
    expect(created.body).toMatchObject({ batch_id: id, row: 1, row_status: 'created' });
    expect(created.body.detail).toMatch(/^Row 1 is already created in the directory/);
    expect(noRow.status).toBe(404);
    expect(noRow.body.detail).toBe(`Batch ${id} has no row 4.`);
    expect(noBatch.status).toBe(404);
    expect(noBatch.body.detail).toBe('No batch with id 6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55.');
    expect((await stack.deps.store.findRows(id))[0]).toMatchObject({ name: 'General Hospital', status: 'created' });
  });

  test('when the batch is rolled back, then 409 says so and the row stays as it was', async () => {
    const id = await batchWithRejectedRow();
    expect((await request(stack.app).post(`/batches/${id}/rollback`)).status).toBe(200);

    const res = await patchRow(id, 2, { address: '12 Harbour Road' });

    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ batch_id: id, batch_status: 'rolled_back' });
    expect((await stack.deps.store.findRows(id))[1]).toMatchObject({ address: '2 Oak Ave', status: 'deleted' });
  });

  test('when an edit lands, then the event stream carries the row, pending again, after the batch failed', async () => {
    const id = await batchWithRejectedRow();

    await patchRow(id, 2, { address: '12 Harbour Road' });

    const events = parseSse((await request(stack.app).get(`/batches/${id}/events`)).text);
    expect(events.slice(-3).map((e) => e.event)).toEqual(['batch', 'row', 'report']);
    expect(events.at(-2)!.data).toEqual({ row: 2, status: 'pending', hospital_id: null, error_message: null, attempts: 1 });
  });
});

describe('PATCH while the batch runs', () => {
  test('when the batch is processing, then 409 and the row is sent as it was uploaded', async () => {
    stack = await startStack({ sim: { createDelayMs: 400 }, env: { UPSTREAM_TIMEOUT_MS: '10000' } });
    const accepted = await request(stack.app).post('/hospitals/bulk').set('Prefer', 'respond-async').attach('file', Buffer.from(THREE_ROWS), 'h.csv');
    const id = accepted.body.batch_id as string;

    const res = await patchRow(id, 3, { name: 'Mercy Renamed' });

    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ batch_id: id, batch_status: expect.stringMatching(/^(pending|processing)$/) });
    const final = parseSse((await request(stack.app).get(`/batches/${id}/events`)).text).at(-1)!;
    expect(final.data).toMatchObject({ status: 'completed' });
    expect(createsOf('Mercy')).toHaveLength(1);
    expect(createsOf('Mercy Renamed')).toHaveLength(0);
  });
});

describe('PATCH and the audit trail (API_KEYS)', () => {
  const KEY = 'carol-key-0123456789abcdef';

  test('when a named key edits a row of a cancelled batch, then the edit is recorded as edit_row by that name and a resume creates the corrected row', async () => {
    stack = await startStack({ env: { API_KEYS: `carol:${KEY}`, UPSTREAM_MAX_ATTEMPTS: '2' } });
    const auth = { Authorization: `Bearer ${KEY}` };
    // A cancelled batch is stopped like a failed one: its rows may be corrected before a resume.
    const batch = { id: randomUUID() };
    await stack.deps.store.admitBatch(
      {
        id: batch.id,
        filename: 'h.csv',
        fileSha256: 'x',
        idempotencyKey: null,
        rows: [
          { row: 1, line: 2, name: 'General Hospital', address: '1 Main St', phone: null },
          { row: 2, line: 3, name: 'Clinic', address: '2 Oak Ave', phone: null },
        ],
      },
      { maxActive: 5 },
    );
    expect((await request(stack.app).post(`/batches/${batch.id}/cancel`).set(auth)).status).toBe(200);

    const edited = await request(stack.app)
      .patch(`/batches/${batch.id}/rows/2`)
      .set(auth)
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ address: '12 Harbour Road' }));

    expect(edited.status).toBe(200);
    expect(edited.body.audit).toEqual([
      { action: 'cancel', by: 'carol', at: expect.any(String) },
      { action: 'edit_row', by: 'carol', at: expect.any(String) },
    ]);
    expect(await stack.deps.store.findAudit(batch.id)).toMatchObject([{ action: 'cancel' }, { action: 'edit_row', by: 'carol' }]);
    const resumed = await request(stack.app).post(`/batches/${batch.id}/resume`).set(auth);
    expect(resumed.body).toMatchObject({ status: 'completed', batch_activated: true });
    expect(resumed.body.hospitals[1]).toMatchObject({ address: '12 Harbour Road', status: 'created_and_activated' });
    expect(resumed.body.audit.map((entry: { action: string }) => entry.action)).toEqual(['cancel', 'edit_row', 'resume']);
  });
});
