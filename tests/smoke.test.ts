import got from 'got';
import pRetry from 'p-retry';
import { parse } from 'csv-parse/sync';
import Database from 'better-sqlite3';
test('esm deps load', async () => {
  expect(typeof got).toBe('function');
  expect(await pRetry(async () => 1)).toBe(1);
  expect(parse('a,b\n1,2')).toEqual([['a','b'],['1','2']]);
  const db = new Database(':memory:');
  expect(db.prepare('select 1 as x').get()).toEqual({ x: 1 });
});
