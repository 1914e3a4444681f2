import type { GenerationsInventory } from '@ibex/spec';
import { FatalError } from '../../common/errors.js';
import { recoverLocked, switchJournaled } from './generations-journal.js';
import { type GenerationsRoot, type Progress, noProgress } from './generations-root.js';
import type { GenerationsState, Journal } from './generations-store.js';
import type { LayoutState } from './layout-read.js';
import { isValidId, shiftSlots } from './layout.js';
import { freshLinksId, soundCurrent, writeLinks } from './volume-steps.js';

export interface RollbackRequest {
  /** Default: the previous generation (`current/1`, or where a trial came from). */
  to?: string;
  reason?: string;
  /** Record the generation switched away from as bad (a failed trial). */
  markFromBad?: boolean;
  /** Aborted while waiting for the lock (the agent stopping): nothing is started. */
  signal?: AbortSignal;
}

/**
 * Points `current` at `to`, the old ones shifted behind it: a journaled change
 * (generations-journal.ts) whose one step writes the new links directory.
 */
export function rollback(g: GenerationsRoot, req: RollbackRequest, progress: Progress = noProgress): Promise<GenerationsInventory> {
  return g.lock.run(async () => {
    req.signal?.throwIfAborted();
    const cfg = g.requireConfig();
    const volume = g.volumeHost(cfg);
    await recoverLocked(g, cfg);
    const l = await g.layout(cfg);
    const from = soundCurrent(g, l).id;
    const state = g.store.readState();
    const to = req.to ?? previousOf(l, state, from);
    if (!to) throw new FatalError(`there is no previous generation to roll back to (current is ${from} and no linked fallback is complete and not bad); name one with to`);
    if (!isValidId(to)) throw new FatalError(`to: '${to}' is not a generation id`);
    const target = l.generations.find((x) => x.id === to);
    if (!target) throw new FatalError(`to: generation ${to} does not exist on ${cfg.volume}; the inventory lists the generations`);
    if (!target.complete) throw new FatalError(`to: generation ${to} is not complete (its root is missing or not read-only); it cannot be booted`);
    if (to === from) {
      progress(100, `${to} is already current`);
      return g.inventoryNow();
    }
    const links = freshLinksId(g, to);
    const journal: Journal = { op: 'switch', links, created: null, to, from, trial: false, reason: req.reason ?? null, markFromBad: req.markFromBad ?? false, download: null, startedAtMs: g.now() };
    const prev = l.slots.filter((s): s is string => !!s);
    await switchJournaled(g, cfg, journal, [{ text: `link ${to} first, the others behind it`, run: () => writeLinks(g, volume, links, shiftSlots(to, prev, cfg.fallbacks)), failpoint: 'gen-linked' }]);
    g.log.warn('rolled back', { from, to, reason: req.reason ?? 'requested' });
    progress(100, `switched from ${from} to ${to}`);
    return g.inventoryNow();
  });
}

function previousOf(l: LayoutState, state: GenerationsState, from: string): string | undefined {
  const ok = (id: string | undefined) => !!id && id !== from && !!l.generations.find((g) => g.id === id && g.complete);
  // A failed trial goes back to where it came from.
  if (state.trial?.id === from && ok(state.trial.previous)) return state.trial.previous;
  // Never back into a generation known to be bad by default (name it explicitly to do that).
  return l.slots.find((s) => ok(s) && state.statuses[s!] !== 'bad');
}
