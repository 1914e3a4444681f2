import type { GenerationsInventory } from '@ibex/spec';
import { failpoint } from '../../common/failpoints.js';
import { recoverLocked, switchJournaled } from './generations-journal.js';
import { type GenerationsRoot, type Progress, noProgress } from './generations-root.js';
import type { Journal } from './generations-store.js';
import { genDir, genRoot, newId, shiftSlots } from './layout.js';
import { type ImageSource, fetchImage, makeRootFromImage, renderFstabInto, runCommands } from './new-root.js';
import { refuseDuringTrial } from './trial-state.js';
import { clearStaleDownloads, freshLinksId, soundCurrent, writeLinks } from './volume-steps.js';

export interface UpgradeRequest {
  /** `commands`: snapshot `current/0/@` and run the commands in it; otherwise a new root from the image. */
  from: { kind: 'commands' } | Exclude<ImageSource, { kind: 'empty' }>;
  /** argv arrays run in a chroot of the new root, in order (any source). */
  commands: string[][];
  /** Start a trial (health check, automatic rollback) after the switch; false marks the generation good at once. */
  trial: boolean;
}

/**
 * A new generation from the current one (commands in a chroot) or from an image, then the switch
 * to it (generations-journal.ts: a journaled change whose commit is the rename over `current`).
 * A cancelled or timed-out job stops the running step (the command is killed); the new generation
 * is then removed.
 */
export function upgrade(g: GenerationsRoot, req: UpgradeRequest, progress: Progress = noProgress, signal?: AbortSignal): Promise<{ id: string; from: string; inventory: GenerationsInventory }> {
  return g.lock.run(async () => {
    const cfg = g.requireConfig();
    const volume = g.volumeHost(cfg);
    await recoverLocked(g, cfg);
    refuseDuringTrial(g, 'upgrade');
    const from = soundCurrent(g, await g.layout(cfg)).id;
    const id = newId(new Date(g.now()));
    await clearStaleDownloads(g);
    // Hash-verified before anything on the volume changes: a bad artifact changes nothing.
    progress(2, req.from.kind === 'commands' ? `snapshotting ${from}` : `fetching and verifying the ${req.from.kind}`);
    const art = req.from.kind === 'commands' ? null : await fetchImage(g, req.from, progress, signal);
    const links = freshLinksId(g, id);
    const journal: Journal = { op: 'upgrade', links, created: id, to: id, from, trial: req.trial, reason: null, markFromBad: false, download: art?.download ?? null, startedAtMs: g.now() };
    const source = req.from;
    await switchJournaled(g, cfg, journal, [
      {
        text: source.kind === 'commands' ? `snapshot ${from} as ${id}` : `make ${id} from the ${source.kind}`,
        run: async () => {
          await g.sys.mkdir(genDir(volume, id), 0o755);
          if (source.kind !== 'commands') return makeRootFromImage(g, volume, id, source, art!.file, progress, signal);
          await g.btrfs.snapshot(genRoot(volume, from), genRoot(volume, id));
          failpoint('gen-snapshotted');
        },
      },
      {
        text: 'render fstab and run the commands in the new root',
        run: async () => {
          await renderFstabInto(g, volume, id);
          await runCommands(g, volume, id, req.commands, progress, signal);
        },
        failpoint: 'gen-changed',
      },
      {
        text: 'set the new root read-only',
        run: async () => {
          progress(80, 'setting the new root read-only');
          await g.btrfs.setReadOnly(genRoot(volume, id));
        },
        failpoint: 'gen-readonly',
      },
      {
        text: `link ${id} first, the previous generations behind it`,
        run: async () => {
          const prev = (await g.layout(cfg)).slots.filter((s): s is string => !!s);
          await writeLinks(g, volume, links, shiftSlots(id, prev, cfg.fallbacks));
        },
        failpoint: 'gen-linked',
      },
    ], () => progress(90, `switching current to ${id}`));
    progress(100, `switched to ${id}${req.trial ? ' (trial)' : ''}`);
    g.log.info('upgraded', { from, to: id, trial: req.trial });
    return { id, from, inventory: await g.inventoryNow() };
  });
}
