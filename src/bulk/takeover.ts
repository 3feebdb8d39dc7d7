import { takeOverBatch, type ProcessDeps } from './process.js';

/**
 * Work a stop left unfinished (a crash, a SIGTERM, a deploy) is finished by whichever
 * instance looks first: every instance polls the store, claims such a batch (the claim is
 * atomic and fenced, so two instances never run one batch) and runs it to the end. With
 * AUTO_RESUME=false it only marks them `interrupted`, for a resume by hand.
 */
export function startTakeover(deps: ProcessDeps): { stop: () => void } {
  const { store, config, logger, lifecycle } = deps;
  // A handover (SIGTERM) should continue within about a second; an expired lease is
  // noticed within a tenth of the lease (leases are renewed every third, so a take-over
  // comes at most ~1.1 leases after the owner died).
  const pollMs = Math.max(50, Math.min(1_000, Math.floor(config.BATCH_LEASE_MS / 10)));
  let busy = false;

  const tick = async () => {
    if (busy || lifecycle.stopping) return;
    busy = true;
    try {
      if (!config.AUTO_RESUME) {
        for (const batchId of await store.interruptOrphans({ leaseExpiredOnly: true, leaseMs: config.BATCH_LEASE_MS })) {
          logger.warn('batch interrupted: its instance stopped; resume it with POST /batches/:id/resume', { batch_id: batchId });
        }
        return;
      }
      while (!lifecycle.stopping) {
        const claimed = await store.claimOrphan({ owner: deps.instanceId, leaseMs: config.BATCH_LEASE_MS });
        if (!claimed) break;
        lifecycle.track(takeOverBatch(deps, claimed.claim)).catch((error: unknown) => {
          logger.warn('taken-over batch did not finish', { batch_id: claimed.claim.batchId, error: error instanceof Error ? error.message : String(error) });
        });
      }
    } catch (error) {
      logger.error('looking for unfinished batches failed', { error: error instanceof Error ? error.message : String(error) });
    } finally {
      busy = false;
    }
  };

  const timer = setInterval(() => void tick(), pollMs);
  timer.unref();
  void tick();
  return { stop: () => clearInterval(timer) };
}
