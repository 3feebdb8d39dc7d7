import { takeOverBatch, type ProcessDeps } from './process.js';

/**
 * Work a stop left unfinished (a crash, a SIGTERM, a deploy) is finished by whichever
 * instance looks first: every instance polls the store, claims such a batch (the claim is
 * atomic and fenced, so two instances never run one batch) and runs it to the end. With
 * AUTO_RESUME=false it only marks them `interrupted`, for a resume by hand.
 */
export function startTakeover(deps: ProcessDeps): { stop: () => Promise<void> } {
  const { store, config, logger, lifecycle } = deps;
  // A handover (SIGTERM) should continue within about a second; an expired lease is
  // noticed within a tenth of the lease (leases are renewed every third, so a take-over
  // comes at most ~1.1 leases after the owner died).
  const pollMs = Math.max(50, Math.min(1_000, Math.floor(config.BATCH_LEASE_MS / 10)));
  let busy: Promise<void> | null = null;
  let stopped = false;

  const tick = () => {
    if (busy || stopped || lifecycle.stopping) return;
    busy = look().finally(() => (busy = null));
  };

  const look = async () => {
    try {
      if (!config.AUTO_RESUME) {
        for (const batchId of await store.interruptOrphans({ leaseExpiredOnly: true, leaseMs: config.BATCH_LEASE_MS })) {
          logger.warn('batch interrupted: its instance stopped; resume it with POST /batches/:id/resume', { batch_id: batchId });
        }
        return;
      }
      while (!stopped && !lifecycle.stopping) {
        const claimed = await store.claimOrphan({ owner: deps.instanceId, leaseMs: config.BATCH_LEASE_MS });
        if (!claimed) break;
        lifecycle.track(takeOverBatch(deps, claimed.claim)).catch((error: unknown) => {
          logger.warn('taken-over batch did not finish', { batch_id: claimed.claim.batchId, error: error instanceof Error ? error.message : String(error) });
        });
      }
    } catch (error) {
      logger.error('looking for unfinished batches failed', { error: error instanceof Error ? error.message : String(error) });
    }
  };

  const timer = setInterval(tick, pollMs);
  timer.unref();
  tick();
  return {
    /**
     * Looks no more. Resolves once the look in flight, if any, has ended: a batch it claimed
     * meanwhile is then tracked by the lifecycle, so a shutdown waits for it to stop too.
     */
    stop: () => {
      stopped = true;
      clearInterval(timer);
      return busy ?? Promise.resolve();
    },
  };
}
