import request from 'supertest';
import { createApp } from '../src/app.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { startStack, type Stack } from './helpers.js';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef-xyz';
const LEGACY = 'legacy-unnamed-key-0123456789';
const csv = 'name,address,phone\nGeneral,1 Main St,555-0100\n';

let stack: Stack;
afterEach(async () => stack?.close());

const as = (key: string) => ({ Authorization: `Bearer ${key}` });

describe('named API keys (API_KEYS)', () => {
  test('when two named keys and the unnamed API_KEY are set, then each works, batches and actions record the name, and a key rotated out stops working', async () => {
    stack = await startStack({ env: { API_KEYS: `alice:${ALICE}, bob:${BOB}`, API_KEY: LEGACY } });

    const byAlice = await request(stack.app).post('/hospitals/bulk').set(as(ALICE)).attach('file', Buffer.from(csv), 'a.csv');
    const byLegacy = await request(stack.app).post('/hospitals/bulk').set(as(LEGACY)).attach('file', Buffer.from(csv), 'b.csv');
    expect(byAlice.body).toMatchObject({ status: 'completed', created_by: 'alice', audit: [] });
    expect(byLegacy.body.created_by).toBeNull();

    const rollback = await request(stack.app).post(`/batches/${byAlice.body.batch_id}/rollback`).set(as(BOB));
    expect(rollback.body.audit).toEqual([{ action: 'rollback', by: 'bob', at: expect.any(String) }]);

    // Alice's key is rotated out: the service restarts with bob's key only, on the same history.
    const rotated = { ...stack.config, API_KEY: undefined, API_KEYS: [{ name: 'bob', key: BOB }] };
    const app = createApp({ ...stack.deps, config: rotated });
    const refused = await request(app).get('/batches').set(as(ALICE));
    const list = await request(app).get('/batches').set(as(BOB));

    expect(refused.status).toBe(401);
    expect(refused.body.detail).toBe('The API key is not valid.');
    expect(list.status).toBe(200);
    expect(list.body.batches.map((b: { filename: string; created_by: string | null }) => [b.filename, b.created_by])).toEqual([
      ['b.csv', null],
      ['a.csv', 'alice'],
    ]);
    const report = await request(app).get(`/batches/${byAlice.body.batch_id}`).set(as(BOB));
    expect(report.body).toMatchObject({ created_by: 'alice', audit: [{ action: 'rollback', by: 'bob' }] });
    // No key, name or secret reached the log.
    const logged = JSON.stringify(stack.logLines);
    for (const secret of [ALICE, BOB, LEGACY]) expect(logged).not.toContain(secret);
  });

  test('when no key is set, then created_by is null', async () => {
    stack = await startStack();
    const res = await request(stack.app).post('/hospitals/bulk').attach('file', Buffer.from(csv), 'a.csv');
    expect(res.body.created_by).toBeNull();
  });

  test('when API_KEYS is malformed, then start-up names the problem, never the key', () => {
    const bad = (value: string) => {
      try {
        loadConfig({ API_KEYS: value });
      } catch (error) {
        if (error instanceof ConfigError) return error.message;
      }
      throw new Error('accepted');
    };
    expect(bad(`alice:${ALICE},alice:${BOB}`)).toMatch(/API_KEYS=<hidden, \d+ characters>: the name alice is given twice/);
    expect(bad('alice:short')).toMatch(/the key named alice must be at least 16 characters/);
    expect(bad(`${ALICE}`)).toMatch(/pair 1 must be name:key/);
    for (const value of [`alice:${ALICE},alice:${BOB}`, 'alice:short']) expect(bad(value)).not.toContain(value.split(':')[1]!.split(',')[0]);
    expect(loadConfig({ API_KEYS: `alice:${ALICE}`, NODE_ENV: 'production' }).API_KEYS).toEqual([{ name: 'alice', key: ALICE }]);
  });
});
