import { FatalError } from '../../common/errors.js';
import { recoverLocked } from './generations-journal.js';
import { type GenerationsRoot, type Progress, noProgress } from './generations-root.js';
import { deleteGeneration, removeLinksDir, soundCurrent } from './volume-steps.js';

export interface GcResult {
  deleted: string[];
  kept: { id: string; why: string[] }[];
  removedLinks: string[];
}

/**
 * Deletes generations nothing needs: not in the current links directory, not booted, not
 * last-known-good, not on trial (nor its way back), not mounted anywhere; half-made ones from a
 * crash go too. Links directories other than the current one are removed. Not journaled: every
 * step leaves a valid volume, and a GC cut short leaves only more of the same for the next one.
 */
export function gc(g: GenerationsRoot, opts: { keep?: number } = {}, progress: Progress = noProgress): Promise<GcResult> {
  return g.lock.run(async () => {
    const cfg = g.requireConfig();
    const volume = g.volumeHost(cfg);
    await recoverLocked(g, cfg);
    const l = await g.layout(cfg);
    soundCurrent(g, l);
    const state = g.store.readState();
    // Fail closed: without mountinfo the booted and mounted generations are unknown, and GC
    // would delete the running root once it left the links directory.
    const mounts = g.readMounts();
    if (!mounts) throw new FatalError(`cannot read ${g.mountinfoPath}: GC cannot tell which generations are booted or mounted; nothing was deleted`);
    const { booted, mounted } = g.mountView(volume, mounts);
    const why = new Map<string, string[]>();
    const protect = (id: string | null | undefined, reason: string) => {
      if (!id) return;
      why.set(id, [...(why.get(id) ?? []), reason]);
    };
    l.slots.forEach((s, i) => protect(s, i === 0 ? 'current' : `slot ${i}`));
    protect(booted, 'booted');
    protect(state.lastGood, 'last-known-good');
    protect(state.trial?.id, 'trial');
    protect(state.trial?.previous, 'trial fallback');
    for (const m of mounted) protect(m, 'mounted');
    const spare = l.generations.filter((gen) => gen.complete && !why.has(gen.id)).sort((a, b) => (b.createdAtMs ?? 0) - (a.createdAtMs ?? 0) || l.generations.indexOf(b) - l.generations.indexOf(a)); // newest first; within a second, by creation order
    for (const gen of spare.slice(0, opts.keep ?? 0)) protect(gen.id, 'kept');
    const victims = l.generations.filter((gen) => !why.has(gen.id));
    // Forget the victims' statuses before deleting anything: a GC killed half way must not leave
    // a half-deleted generation that the inventory still calls `good` (it shows `unknown`,
    // `complete: false`, and the next GC finishes it).
    for (const gen of victims) delete state.statuses[gen.id];
    if (victims.length) g.store.writeState(state);
    const deleted: string[] = [];
    for (const [i, gen] of victims.entries()) {
      progress(Math.round((i / Math.max(1, victims.length)) * 90), `deleting ${gen.id}`);
      await deleteGeneration(g, volume, gen);
      deleted.push(gen.id);
    }
    const removedLinks: string[] = [];
    for (const d of l.linksDirs) {
      if (d === l.currentLinks) continue;
      if (await removeLinksDir(g, volume, d)) removedLinks.push(d);
    }
    g.store.writeState(state);
    if (deleted.length) g.log.info('garbage-collected generations', { deleted: deleted.join(','), links: removedLinks.length });
    progress(100, `deleted ${deleted.length} generation(s)`);
    return { deleted, kept: [...why].map(([id, w]) => ({ id, why: w })), removedLinks };
  });
}
