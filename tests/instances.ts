/** Shared by instances.test.ts and instances.pg.test.ts: uploads and checks against real service processes. */
import type { BatchReport } from '../src/http/presenter.js';
import type { Simulator } from '../simulator/simulator.js';
import { requestsTo } from './helpers.js';
import type { ServiceProcess } from './service-process.js';

export const names = (rows: number) => Array.from({ length: rows }, (_, i) => `Hospital ${i + 1}`);
export const csv = (rows: number) => ['name,address', ...names(rows).map((name, i) => `${name},${i + 1} Main St`)].join('\n');

export function form(content: string): FormData {
  const body = new FormData();
  body.append('file', new Blob([content], { type: 'text/csv' }), 'hospitals.csv');
  return body;
}

export async function uploadAsync(service: ServiceProcess, rows: number, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${service.url}/hospitals/bulk`, { method: 'POST', body: form(csv(rows)), headers: { prefer: 'respond-async', ...headers } });
  expect(res.status).toBe(202);
  return ((await res.json()) as { batch_id: string }).batch_id;
}

export async function report(service: ServiceProcess, batchId: string): Promise<BatchReport> {
  const res = await fetch(`${service.url}/batches/${batchId}`);
  expect(res.status).toBe(200);
  return (await res.json()) as BatchReport;
}

/** The directory holds exactly one active hospital per row of the batch: no duplicate, none missing. */
export function expectOneActiveHospitalPerRow(sim: Simulator, batchId: string, rows: number) {
  const held = sim.hospitals().filter((h) => h.creation_batch_id === batchId);
  expect(held.map((h) => h.name).sort()).toEqual(names(rows).sort());
  expect(held.every((h) => h.active)).toBe(true);
}

/** The create the directory is inside its delay for (received, not answered). */
export const createInFlight = (sim: Simulator, nth: number) => {
  const create = requestsTo(sim, 'create')[nth - 1];
  return create !== undefined && create.status === null;
};

