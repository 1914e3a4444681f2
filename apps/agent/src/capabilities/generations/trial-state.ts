import { FatalError } from '../../common/errors.js';
import type { GenerationsRoot } from './generations-root.js';

// The trial bookkeeping on disk (the trial monitor, trial-monitor.ts, decides when).

/**
 * The trial passed: the generation becomes good and last-known-good. False (nothing written)
 * when it is no longer the trial or `signal` was aborted while this waited for the lock.
 */
export function markGood(g: GenerationsRoot, id: string, signal?: AbortSignal): Promise<boolean> {
  return g.lock.run(async () => {
    if (signal?.aborted) return false;
    const state = g.store.readState();
    if (state.trial?.id !== id) return false;
    state.statuses[id] = 'good';
    state.lastGood = id;
    state.trial = null;
    g.store.writeState(state);
    g.log.info('generation passed its health check', { generation: id });
    return true;
  });
}

/**
 * At start: one boot counted per kernel boot of the trial generation. A trial generation that
 * booted with no boots left (it never passed its check) is given up. Returns why it must be
 * rolled back, if it must.
 */
export function countBoot(g: GenerationsRoot): Promise<string | undefined> {
  return g.lock.run(async () => {
    const cfg = g.store.readConfig();
    if (!cfg) return undefined;
    const state = g.store.readState();
    const t = state.trial;
    if (!t) return undefined;
    const { booted } = g.mountView(g.volumeHost(cfg));
    const bootId = g.bootId();
    if (booted === t.id && bootId && bootId !== t.countedBootId) {
      if (t.bootsLeft === 0) return `generation ${t.id} booted ${cfg.health.boots} time(s) without passing its health check`;
      t.bootsLeft -= 1;
      t.countedBootId = bootId;
      t.awaitingBoot = false;
      // The deadline runs from this boot: the agent needs time to start and connect.
      t.deadlineAtMs = g.now() + cfg.health.deadlineSec * 1000;
      g.store.writeState(state);
      g.log.info('counted a boot of the trial generation', { generation: t.id, bootsLeft: t.bootsLeft });
    }
    return undefined;
  });
}

/**
 * Building on a generation still on trial would make the new trial fall back to an unconfirmed
 * generation (and a failed check then rolls back to it): refused until the trial ends.
 */
export function refuseDuringTrial(g: GenerationsRoot, what: string): void {
  const t = g.store.readState().trial;
  if (!t) return;
  const when = t.awaitingBoot ? 'it has not been booted yet (requireBoot)' : `its health check is pending (deadline ${new Date(t.deadlineAtMs).toISOString()})`;
  throw new FatalError(
    `cannot ${what}: generation ${t.id} is still on trial (${when}); wait until it is good (the agent reaches the controller and its checks pass) or roll it back to ${t.previous} with generations.rollback, then try again`,
  );
}
