import { setTimeout as sleep } from 'node:timers/promises';
import { matchRows } from './reconcile.js';
import type { Hospital, NewHospital } from './types.js';

/** A row whose create's answer was lost at `lostAt` (epoch ms): it may still be stored. */
export interface LostCreate extends NewHospital {
  row: number;
  lostAt: number;
}

/** Each lost row either found its hospital (`adopted`) or is known not to have been stored (`absent`). */
export interface Settlement<R> {
  adopted: Map<R, Hospital>;
  absent: R[];
  /** Batch reads it took. */
  reads: number;
}

/**
 * How often the batch is read while a create may still land: soon at first (a create that
 * timed out usually lands a moment later), then less often. The directory allows 50 reads
 * of one batch a minute, so a settle of the default 8 s costs about 8 reads, not 32.
 */
export const SETTLE_POLL = { firstMs: 250, maxMs: 2_000 };

/**
 * Settles creates whose answers were lost, all with the same batch reads. Each read adopts
 * matching hospitals that no row has `claimed`, as a multiset in row order (ids go into
 * `claimed`); a row not matched is `absent` only in a read that began `settleMs` or more
 * after its `lostAt`, when its create has landed or never will (CONTRACT.md). Until then
 * the batch is read again (SETTLE_POLL), so a create that lands soon is adopted
 * soon instead of after the whole settle time. Identical rows must not be in flight
 * meanwhile: a hospital that an in-flight row will claim would look unclaimed here.
 * Throws what `read` throws.
 */
export async function settleLostCreates<R extends LostCreate>(
  read: () => Promise<Hospital[]>,
  lost: readonly R[],
  claimed: Set<number>,
  { settleMs, poll = SETTLE_POLL }: { settleMs: number; poll?: { firstMs: number; maxMs: number } },
): Promise<Settlement<R>> {
  const adopted = new Map<R, Hospital>();
  const absent: R[] = [];
  let waiting = [...lost].sort((a, b) => a.row - b.row);
  let reads = 0;
  while (waiting.length > 0) {
    const readAt = Date.now();
    const hospitals = await read();
    reads += 1;
    for (const [row, hospital] of matchRows(hospitals, waiting, claimed)) adopted.set(row, hospital);
    const unmatched = waiting.filter((row) => !adopted.has(row));
    absent.push(...unmatched.filter((row) => readAt >= row.lostAt + settleMs));
    waiting = unmatched.filter((row) => readAt < row.lostAt + settleMs);
    if (waiting.length === 0) break;
    // Read again after the poll interval, or as soon as the first row's settle time is up.
    const firstDeadline = Math.min(...waiting.map((row) => row.lostAt + settleMs));
    const pollMs = Math.min(poll.firstMs * 2 ** (reads - 1), poll.maxMs);
    await sleep(Math.max(0, Math.min(readAt + pollMs, firstDeadline) - Date.now()));
  }
  return { adopted, absent: absent.sort((a, b) => a.row - b.row), reads };
}
