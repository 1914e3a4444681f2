import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { removeDurableSync } from '../../journal/atomic-file.js';
import { errorMessage } from '../../common/errors.js';
import { type ChangeStep, ChangeFailed, type Recoverable, type RecoveredChange, runJournaled } from '../../engine/journaled-change.js';
import type { GenerationsRoot } from './generations-root.js';
import type { GenerationsConfig, Journal } from './generations-store.js';
import { readCurrentLinks, readLayout } from './layout-read.js';
import { volumePaths } from './layout.js';
import { deleteGeneration, removeDownload, removeLinksDir, switchLinks } from './volume-steps.js';

/**
 * An init, an upgrade or a switch (rollback) as a journaled change (engine/journaled-change.ts): the
 * journal names the links directory it makes, the generation it creates and the download it
 * made; the steps build them; the commit is the one rename() that points `current` at the new
 * links directory. Whether `current` points there is what recovery decides by: it did, the
 * change is finished (state follows); it did not, everything the change made is removed.
 * Runs under the caller's lock. Throws the failing step's own error, after undoing it.
 */
export async function switchJournaled(g: GenerationsRoot, cfg: GenerationsConfig, journal: Journal, steps: ChangeStep[], beforeSwitch?: () => void): Promise<void> {
  const volume = g.volumeHost(cfg);
  try {
    await runJournaled(
      {
        what: `generations ${journal.op} to ${journal.to}`,
        journal: g.store.journal,
        record: journal,
        journaled: 'gen-journaled',
        steps,
        // Nothing points at what the steps made yet: removed now rather than at the next start.
        undo: () => discard(g, cfg, journal),
        commit: {
          text: `switch current to ${journal.to}`,
          run: () => {
            beforeSwitch?.();
            return switchLinks(g, volume, journal.links);
          },
          failpoint: 'gen-switched',
        },
      },
      { log: g.log },
    );
  } catch (err) {
    if (!(err instanceof ChangeFailed)) throw err;
    if (err.undoError !== undefined) g.log.error(`removing what the failed ${journal.op} made failed; the next start retries`, { error: errorMessage(err.undoError) });
    throw err.cause;
  }
  finish(g, cfg, journal);
}

/** Finishes or undoes an operation a crash interrupted. Safe to call at any time (takes the lock). */
export function recover(g: GenerationsRoot): Promise<string | undefined> {
  return g.lock.run(async () => {
    const cfg = g.store.readConfig();
    return cfg ? (await recoverLocked(g, cfg))?.reason : undefined;
  });
}

/** The same, under the lock the caller holds: every operation runs it before its own. */
export async function recoverLocked(g: GenerationsRoot, cfg: GenerationsConfig): Promise<RecoveredChange | undefined> {
  const j = g.store.journal.read();
  if (!j) return undefined;
  const what = `generations ${j.op}`;
  if ((await readCurrentLinks(g.sys, g.volumeHost(cfg))) === j.links) {
    // The rename happened: the new generation is what boots; record it.
    finish(g, cfg, j);
    g.log.warn(`finished an interrupted ${j.op}: current is ${j.to}`, { from: j.from });
    return { what, outcome: 'finished', reason: `finished the interrupted ${j.op} to ${j.to}` };
  }
  await discard(g, cfg, j);
  g.store.journal.clear();
  if (j.op === 'init') {
    g.log.warn(`rolled back an interrupted init of ${cfg.volume}: its half-made generation ${j.to} is removed`);
    return { what, outcome: 'undone', reason: `rolled back the interrupted init of ${cfg.volume} (generation ${j.to} removed); run generations.init again` };
  }
  g.log.warn(`rolled back an interrupted ${j.op}: current stays ${j.from}`, { abandoned: j.to });
  return { what, outcome: 'undone', reason: `rolled back the interrupted ${j.op} to ${j.to}; current stays ${j.from}` };
}

/**
 * Generations as a Recoverable, for the agent's start. A failure is logged, not thrown: every
 * generations operation recovers first, so the next job retries it.
 */
export function generationsRecovery(g: GenerationsRoot): Recoverable {
  return {
    name: 'generations',
    recover: async () => {
      try {
        const r = g.config() ? await g.lock.run(() => recoverLocked(g, g.requireConfig())) : undefined;
        if (r) g.log.warn(`generations: ${r.reason}`);
        return r ? [r] : [];
      } catch (err) {
        g.log.error('generations recovery failed; generations jobs will retry it', { error: errorMessage(err) });
        return [];
      }
    },
  };
}

/** Undoes an operation whose switch did not happen: its links dir and the generation it made. */
async function discard(g: GenerationsRoot, cfg: GenerationsConfig, j: Journal): Promise<void> {
  const volume = g.volumeHost(cfg);
  const p = volumePaths(volume);
  const nextSt = await g.sys.lstat(p.nextCurrent);
  if (nextSt?.isSymbolicLink()) await g.sys.unlink(p.nextCurrent);
  for (const name of await g.sys.readdir(p.next)) if (name.startsWith('.current.ibex-')) await g.sys.unlink(join(p.next, name));
  await removeLinksDir(g, volume, j.links);
  const l = await readLayout(g.sys, g.btrfs, volume);
  if (j.created && !l.slots.includes(j.created)) {
    const gen = l.generations.find((x) => x.id === j.created);
    if (gen) await deleteGeneration(g, volume, gen);
  }
  await removeDownload(g, j.download);
  // An init's config was written just before its journal: without the layout it names nothing.
  if (j.op === 'init' && existsSync(g.store.configPath)) removeDurableSync(g.store.configPath);
}

/** The switch happened: state follows (trial, bad, last rollback), then the journal goes. */
function finish(g: GenerationsRoot, cfg: GenerationsConfig, j: Journal): void {
  const state = g.store.readState();
  const now = g.now();
  if (j.markFromBad) state.statuses[j.from] = 'bad';
  if (j.op === 'switch') state.lastRollback = { from: j.from, to: j.to, reason: j.reason ?? 'requested', atMs: now };
  if (state.trial && state.trial.id !== j.to) state.trial = null;
  if (j.trial) {
    state.statuses[j.to] = 'trial';
    state.trial = {
      id: j.to,
      previous: j.from,
      startedAtMs: now,
      deadlineAtMs: now + cfg.health.deadlineSec * 1000,
      bootsLeft: cfg.health.boots,
      countedBootId: null,
      awaitingBoot: cfg.health.requireBoot,
    };
  } else if (j.op === 'upgrade' || j.op === 'init') {
    state.statuses[j.to] = 'good';
    state.lastGood = j.to;
  }
  g.store.writeState(state);
  void removeDownload(g, j.download).catch(() => {});
  g.store.journal.clear();
}
