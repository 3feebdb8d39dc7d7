import pg from 'pg';

/**
 * A pool on `url` of at most `max` connections that keeps `keep` of them open for good. A
 * new connection costs the server a fork and both sides a SCRAM handshake: 20–25 ms on a
 * quiet 2-core machine, 40–100 ms while an upload keeps it busy. pg's default closes every
 * idle connection after 10 s, so the first upload after a quiet spell paid that again on its
 * way to the directory, and a busy moment that needed a second connection (a release
 * overlapping the activation's pacing claim) paid it in the middle of a batch.
 *
 * With `eager`, the kept ones open together, in the background, when the pool opens its
 * first: for a pool whose first statement comes with the first upload (pacing), so that one
 * pays for them, not a later one mid-batch. The store's first statements come at start-up,
 * where opening more at once made the start-up up to 200 ms slower: it keeps what it opens.
 * Connections beyond `keep` still open on demand and close after 10 s idle; one that fails
 * or is dropped is simply opened again when needed.
 */
export function createPool(url: string, { max, keep, eager = false }: { max: number; keep: number; eager?: boolean }): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, min: keep });
  // An idle client that errors (the server restarted) must not crash the process.
  pool.on('error', () => undefined);
  if (eager) {
    pool.once('connect', () => {
      void Promise.allSettled(Array.from({ length: keep - 1 }, () => pool.connect())).then((opened) => {
        for (const result of opened) if (result.status === 'fulfilled') result.value.release();
      });
    });
  }
  return pool;
}
