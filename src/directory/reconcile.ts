import type { Hospital, NewHospital } from './types.js';

/**
 * Matching rows to the hospitals the directory holds, when a create's answer was lost and
 * it may or may not have stored the row. Rows with the same values are a multiset: each
 * takes its own hospital, so two identical rows never share one and a third is never made.
 */

const sameValues = (h: Hospital, wanted: NewHospital) =>
  h.name === wanted.name && h.address === wanted.address && (h.phone ?? null) === (wanted.phone ?? null);

/** Multiset matching: the lowest-id hospital with the same values that no other row owns. */
export function findUnclaimed(hospitals: Hospital[], wanted: NewHospital, claimed: ReadonlySet<number>): Hospital | undefined {
  return hospitals.filter((h) => !claimed.has(h.id) && sameValues(h, wanted)).sort((a, b) => a.id - b.id)[0];
}

/**
 * Matches many rows against one listing of their batch, in the order given; each match's id
 * is added to `claimed` (seed it with the ids rows already own). Rows with no match are absent.
 */
export function matchRows<R extends NewHospital>(upstream: Hospital[], rows: readonly R[], claimed: Set<number>): Map<R, Hospital> {
  const matches = new Map<R, Hospital>();
  for (const row of rows) {
    const match = findUnclaimed(upstream, row, claimed);
    if (!match) continue;
    claimed.add(match.id);
    matches.set(row, match);
  }
  return matches;
}
