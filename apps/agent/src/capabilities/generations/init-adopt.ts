import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { GenerationsInventory } from '@ibex/spec';
import { FatalError } from '../../common/errors.js';
import { removeDurableSync } from '../../journal/atomic-file.js';
import { writeDeviceFile } from '../../system/device-file-writer.js';
import { type GenerationsRoot, type Progress, defaultHealth, noProgress } from './generations-root.js';
import { type GenerationsConfig, type Journal, emptyState } from './generations-store.js';
import { recoverLocked, switchJournaled } from './generations-journal.js';
import { describeLayoutProblem, readLayout } from './layout-read.js';
import { DEFAULT_FALLBACKS, genDir, genRoot, isValidId, newId, shiftSlots, volumePaths } from './layout.js';
import { type ImageSource, fetchImage, makeRootFromImage, renderFstabInto } from './new-root.js';
import { refuseDuringTrial } from './trial-state.js';
import { clearStaleDownloads, freshLinksId, mkdirp, writeLinks } from './volume-steps.js';

export interface InitRequest {
  volume: string;
  fallbacks?: number;
  health?: Partial<GenerationsConfig['health']>;
  /** Subvolumes created under commons/ (`@var@log`, `@home` ...). */
  commons: string[];
  /** The fstab template (with CURRENT_SNAPSHOTS_PATH), written when the volume has none. */
  fstab?: string;
  image: ImageSource;
}

const notBtrfs = (volume: string) => new FatalError(`volume: ${volume} is not a mounted btrfs filesystem; mount the btrfs top level (subvolid=5) there first`);

/**
 * Lays the wiki's layout out on an empty btrfs volume, with a first generation from `image`.
 * The shared directories and commons come first (each leaves a valid volume and is made again by
 * the next init); the first generation and its links directory are a journaled change
 * (switchJournaled) whose commit is the rename of `current`, so a crash half way through making
 * the generation is undone at the next start (or by the next generations job) instead of
 * leaving a half-made snapshot on an unconfigured volume that nothing would clear.
 */
export function init(g: GenerationsRoot, req: InitRequest, progress: Progress = noProgress, signal?: AbortSignal): Promise<GenerationsInventory> {
  return g.lock.run(async () => {
    const volume = g.volumeHost(req);
    const existing = g.store.readConfig();
    if (existing && existing.volume !== req.volume) throw new FatalError(`generations are already configured on ${existing.volume}; a device has one generations volume`);
    if (existing) await recoverLocked(g, existing);
    if (!(await g.btrfs.isBtrfs(volume))) throw notBtrfs(req.volume);
    const p = volumePaths(volume);
    if (await g.sys.lstat(p.current)) throw new FatalError(`volume: ${req.volume} already has a layout (${req.volume}/current exists); use generations.adopt to take it over unchanged`);
    for (const name of req.commons) if (!isValidId(name.replace(/@/g, 'a'))) throw new FatalError(`commons: '${name}' is not a plain subvolume name`);
    const cfg: GenerationsConfig = { volume: req.volume, fallbacks: req.fallbacks ?? DEFAULT_FALLBACKS, health: { ...defaultHealth(), ...req.health } };
    const id = newId(new Date(g.now()));
    await clearStaleDownloads(g);
    // Verified before the volume is touched: a bad artifact changes nothing.
    const art = req.image.kind === 'empty' ? null : await fetchImage(g, req.image, progress, signal);
    try {
      for (const d of [p.next, p.commons, p.snapshots, p.links]) await mkdirp(g, d);
      for (const name of req.commons) {
        const sv = join(p.commons, name);
        if (!(await g.sys.lstat(sv))) await g.btrfs.create(sv);
      }
      if (req.fstab !== undefined && !(await g.sys.lstat(p.fstab))) await writeDeviceFile(g.sys, p.fstab, Buffer.from(req.fstab), { mode: 0o644, symlink: 'refuse' });
    } catch (err) {
      if (art?.download) await g.sys.unlink(art.download);
      throw err;
    }
    progress(10, 'creating the first generation');
    const links = freshLinksId(g, id);
    // Before the journal: recovery (at start, or before the next generations job) looks at the configured volume.
    g.store.writeConfig(cfg);
    g.store.writeState(emptyState());
    const journal: Journal = { op: 'init', links, created: id, to: id, from: id, trial: false, reason: null, markFromBad: false, download: art?.download ?? null, startedAtMs: g.now() };
    try {
      await switchJournaled(g, cfg, journal, [
        {
          text: `create the first generation ${id}`,
          run: async () => {
            await g.sys.mkdir(genDir(volume, id), 0o755);
            await makeRootFromImage(g, volume, id, req.image, art?.file ?? null, progress, signal);
            await renderFstabInto(g, volume, id);
            await g.btrfs.setReadOnly(genRoot(volume, id));
          },
          failpoint: 'gen-readonly',
        },
        { text: `write links ${links}`, run: () => writeLinks(g, volume, links, shiftSlots(id, [], cfg.fallbacks)), failpoint: 'gen-linked' },
      ]);
    } catch (err) {
      // Undone (or left journaled for recovery, which removes the config too): not configured.
      if (!g.store.journal.read() && existsSync(g.store.configPath)) removeDurableSync(g.store.configPath);
      throw err;
    }
    g.log.info('generations initialised', { volume: req.volume, generation: id });
    progress(100, `initialised ${req.volume} with generation ${id}`);
    return g.inventoryNow();
  });
}

/**
 * Takes over a layout made by hand the wiki's way. Reads only: the volume is left exactly as
 * it is; the agent's config and state go to its own directory. The current generation counts
 * as good (it is what the device runs on); every other one is recorded `unknown`.
 */
export function adopt(g: GenerationsRoot, req: { volume: string; fallbacks?: number; health?: Partial<GenerationsConfig['health']> }): Promise<GenerationsInventory> {
  return g.lock.run(async () => {
    const volume = g.volumeHost(req);
    if (!(await g.btrfs.isBtrfs(volume))) throw notBtrfs(req.volume);
    const l = await readLayout(g.sys, g.btrfs, volume);
    const problem = describeLayoutProblem(l, req.volume);
    if (problem) throw new FatalError(`volume: ${req.volume} does not hold the wiki's layout: ${problem}`);
    const cfg: GenerationsConfig = { volume: req.volume, fallbacks: req.fallbacks ?? Math.max(0, l.slots.length - 1), health: { ...defaultHealth(), ...req.health } };
    const old = g.store.readConfig();
    const moving = !!old && old.volume !== req.volume;
    if (moving) {
      // The trial, its way back and an interrupted operation belong to the old volume: they must end there first.
      if (g.store.journal.read()) throw new FatalError(`volume: an operation on ${old.volume} is journaled (interrupted or running); let it finish (the next generations job or agent start recovers it) before adopting ${req.volume}`);
      refuseDuringTrial(g, `adopt ${req.volume}`);
    }
    g.store.writeConfig(cfg);
    // Statuses and last-known-good of another volume mean nothing here.
    const state = moving ? emptyState() : g.store.readState();
    const cur = l.slots[0]!;
    state.statuses[cur] ??= 'good';
    state.lastGood ??= cur;
    // The others never ran under this agent: no verdict until one is judged (docs/generations.md).
    for (const gen of l.generations) state.statuses[gen.id] ??= 'unknown';
    g.store.writeState(state);
    g.log.info('generations layout adopted', { volume: req.volume, current: cur, generations: l.generations.length });
    return g.inventoryNow();
  });
}

/** Writes the agent's settings (the section's configure / revert; null removes them), under the lock. */
export function setConfig(g: GenerationsRoot, cfg: GenerationsConfig | null): Promise<void> {
  return g.lock.run(async () => {
    if (cfg) g.store.writeConfig(cfg);
    else if (existsSync(g.store.configPath)) removeDurableSync(g.store.configPath);
  });
}
