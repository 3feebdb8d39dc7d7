import { setMaxListeners } from 'node:events';

/**
 * What a shutdown needs to know about work in progress: a signal that says "stopping"
 * (uploads are refused, batches stop after the row in flight) and the batches still running,
 * so the process waits for their partial reports before it closes the database.
 */
export function createLifecycle() {
  const controller = new AbortController();
  // Every create in flight listens for the stop (UPSTREAM_CONCURRENCY of them per batch,
  // MAX_ACTIVE_BATCHES batches) and stops listening once it ends (src/bulk/run.ts
  // unlessStopped): more than Node's default of 10 is expected, not a leak.
  setMaxListeners(0, controller.signal);
  const running = new Set<Promise<unknown>>();
  return {
    signal: controller.signal,
    get stopping(): boolean {
      return controller.signal.aborted;
    },
    /** Batches running now (synchronous and asynchronous uploads, resumes, rollbacks). */
    get active(): number {
      return running.size;
    },
    /** Registers a running batch; shutdown waits for it. */
    track<T>(work: Promise<T>): Promise<T> {
      running.add(work);
      void work.then(
        () => running.delete(work),
        () => running.delete(work),
      );
      return work;
    },
    /**
     * Tells running batches to stop and resolves once every one has written its state,
     * including any started while stopping (an upload admitted a moment before, a batch a
     * take-over claimed). Safe to call again: it waits for what runs then.
     */
    async stop(): Promise<void> {
      controller.abort();
      while (running.size > 0) await Promise.allSettled([...running]);
    },
  };
}

export type Lifecycle = ReturnType<typeof createLifecycle>;
