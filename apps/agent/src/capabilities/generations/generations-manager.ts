import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { GenerationsInventory } from '@ibex/spec';
import { FatalError, errorMessage } from '../../common/errors.js';
import { failpoint } from '../../common/failpoints.js';
import type { Logger } from '../../common/log.js';
import { Mutex } from '../../common/mutex.js';
import { removeDurableSync } from '../../journal/atomic-file.js';
import { RootEscapeError, resolveUnderRoot } from '../../system/root-path.js';
import type { SystemAdapter } from '../../system/system-adapter.js';
import { fetchVerified } from './artifact.js';
import { Btrfs, run } from './btrfs.js';
import { chrootArgv, defaultSelfCommand } from './chroot-exec.js';
import { type GenerationsConfig, GenerationsStore, type GenerationsState, type Journal, emptyState } from './generations-store.js';
import { type GenerationOnDisk, type LayoutState, currentGeneration, describeLayoutProblem, readCurrentLinks, readLayout } from './layout-read.js';
import { DEFAULT_FALLBACKS, currentTarget, genDir, genRoot, isValidId, linksDir, newId, renderFstab, shiftSlots, slotTarget, volumePaths } from './layout.js';
import { type MountEntry, bootedGeneration, mountedGenerations, parseMountinfo, volumeSource } from './mountinfo.js';

export type ImageSource =
  | { kind: 'tarball' | 'sendStream'; path?: string; url?: string; sha256: string }
  | { kind: 'empty' };

export interface UpgradeRequest {
  /** `commands`: snapshot `current/0/@` and run the commands in it; otherwise a new root from the image. */
  from: { kind: 'commands' } | Exclude<ImageSource, { kind: 'empty' }>;
  /** argv arrays run in a chroot of the new root, in order (any source). */
  commands: string[][];
  /** Start a trial (health check, automatic rollback) after the switch; false marks the generation good at once. */
  trial: boolean;
}

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

export interface GcResult {
  deleted: string[];
  kept: { id: string; why: string[] }[];
  removedLinks: string[];
}

export type Progress = (percent: number, message: string) => void;

export interface ManagerDeps {
  root: string;
  sys: SystemAdapter;
  log: Logger;
  /** Default `<root>/proc/self/mountinfo`; tests feed a mountinfo captured in a mount namespace. */
  mountinfoPath?: string;
  /** Where the running system's root is mounted in that mountinfo (default `/`). */
  rootMountPoint?: string;
  /** How to run the agent itself as the chroot helper (default: this executable). */
  selfCommand?: string[];
  /** The kernel's boot id (one per boot), for boot counting. */
  bootIdPath?: string;
  now?: () => number;
  signal?: AbortSignal;
}

export const defaultHealth = (): GenerationsConfig['health'] => ({ deadlineSec: 600, boots: 2, checks: [], requireBoot: false });

const noProgress: Progress = () => {};

/**
 * One lock per generations state directory (so per --root), shared by every manager of this
 * process: the `generations` section (a manager per apply), the jobs and the trial monitor (the
 * agent's manager) never interleave on the same volume and records. Another process (an
 * `ibex-agent apply` run by hand while the agent runs) is not covered by it.
 */
const locks = new Map<string, Mutex>();
function lockFor(stateDir: string): Mutex {
  const key = resolve(stateDir);
  let m = locks.get(key);
  if (!m) locks.set(key, (m = new Mutex()));
  return m;
}

/**
 * The btrfs generations of one volume: init/adopt, upgrade, switch/rollback, GC, recovery and
 * trial bookkeeping. Every operation that changes the volume journals itself first and runs
 * under one lock; `recover()` (also run before every operation) finishes or undoes an
 * interrupted one, so `current` always resolves to a complete read-only generation.
 */
export class GenerationsManager {
  readonly store: GenerationsStore;
  readonly btrfs: Btrfs;
  private readonly mutex: Mutex;
  private readonly sys: SystemAdapter;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(private readonly deps: ManagerDeps) {
    this.sys = deps.sys;
    this.log = deps.log;
    this.store = new GenerationsStore(deps.root);
    this.mutex = lockFor(this.store.dir);
    this.btrfs = new Btrfs(deps.sys);
    this.now = deps.now ?? Date.now;
  }

  /** Host path of the volume named in the config (a device path under --root). */
  volumeHost(cfg: GenerationsConfig): string {
    return join(this.deps.root, cfg.volume);
  }

  config(): GenerationsConfig | undefined {
    return this.store.readConfig();
  }

  requireConfig(): GenerationsConfig {
    const c = this.store.readConfig();
    if (!c) throw new FatalError(`no generations volume is configured (${this.store.configPath} is missing); run the generations.init or generations.adopt job first`);
    return c;
  }

  // ---------------------------------------------------------------- reading

  private get mountinfoPath(): string {
    return this.deps.mountinfoPath ?? join(this.deps.root, 'proc/self/mountinfo');
  }

  /** The mounts, or null when mountinfo cannot be read. */
  private readMounts(): MountEntry[] | null {
    try {
      return parseMountinfo(readFileSync(this.mountinfoPath, 'utf8'));
    } catch {
      return null;
    }
  }

  mounts(): MountEntry[] {
    return this.readMounts() ?? [];
  }

  /** The generation the running system booted and every generation some mount uses. */
  mountView(volume: string, mounts: readonly MountEntry[] = this.mounts()): { booted: string | undefined; mounted: Set<string> } {
    const source = volumeSource(mounts, volume);
    return { booted: bootedGeneration(mounts, this.deps.rootMountPoint ?? '/', source), mounted: mountedGenerations(mounts, source) };
  }

  bootId(): string | null {
    try {
      return readFileSync(this.deps.bootIdPath ?? join(this.deps.root, 'proc/sys/kernel/random/boot_id'), 'utf8').trim() || null;
    } catch {
      return null;
    }
  }

  async layout(cfg = this.requireConfig()): Promise<LayoutState> {
    return readLayout(this.sys, this.btrfs, this.volumeHost(cfg));
  }

  async inventory(): Promise<GenerationsInventory | undefined> {
    const cfg = this.store.readConfig();
    if (!cfg) return undefined;
    const l = await this.layout(cfg);
    const state = this.store.readState();
    const { booted } = this.mountView(l.volume);
    const current = l.slots[0] ?? null;
    return {
      volume: cfg.volume,
      current,
      booted: booted ?? null,
      lastGood: state.lastGood,
      trial: state.trial ? { id: state.trial.id, deadlineAtMs: Math.max(0, Math.round(state.trial.deadlineAtMs)), bootsLeft: state.trial.bootsLeft } : null,
      generations: l.generations.slice(-256).map((g) => {
        const slot = l.slots.indexOf(g.id);
        return {
          id: g.id,
          createdAtMs: g.createdAtMs,
          status: state.statuses[g.id] ?? 'unknown',
          booted: g.id === booted,
          current: g.id === current,
          slot: slot >= 0 ? slot : null,
          readOnly: g.readOnly,
          complete: g.complete,
        };
      }),
      collectedAtMs: this.now(),
    };
  }

  // ---------------------------------------------------------------- init / adopt

  /** Lays the wiki's layout out on an empty btrfs volume, with a first generation from `image`. */
  init(req: InitRequest, progress: Progress = noProgress, signal?: AbortSignal): Promise<GenerationsInventory> {
    return this.mutex.run(async () => {
      const sig = signal ?? this.deps.signal;
      const volume = join(this.deps.root, req.volume);
      const existing = this.store.readConfig();
      if (existing && existing.volume !== req.volume) throw new FatalError(`generations are already configured on ${existing.volume}; a device has one generations volume`);
      if (!(await this.btrfs.isBtrfs(volume))) throw new FatalError(`volume: ${req.volume} is not a mounted btrfs filesystem; mount the btrfs top level (subvolid=5) there first`);
      const p = volumePaths(volume);
      if (await this.sys.lstat(p.current)) throw new FatalError(`volume: ${req.volume} already has a layout (${req.volume}/current exists); use generations.adopt to take it over unchanged`);
      for (const name of req.commons) if (!isValidId(name.replace(/@/g, 'a'))) throw new FatalError(`commons: '${name}' is not a plain subvolume name`);
      const cfg: GenerationsConfig = { volume: req.volume, fallbacks: req.fallbacks ?? DEFAULT_FALLBACKS, health: { ...defaultHealth(), ...req.health } };
      const id = newId(new Date(this.now()));
      await this.clearStaleDownloads();
      // Verified before the volume is touched: a bad artifact changes nothing.
      const art = req.image.kind === 'empty' ? null : await this.fetchImage(req.image, id, sig);
      // Let an earlier, interrupted init be finished by this one: the directories may exist.
      for (const d of [p.next, p.commons, p.snapshots, p.links]) await this.mkdirp(d);
      for (const name of req.commons) {
        const sv = join(p.commons, name);
        if (!(await this.sys.lstat(sv))) await this.btrfs.create(sv);
      }
      if (req.fstab !== undefined && !(await this.sys.lstat(p.fstab))) await this.sys.writeFileAtomic(p.fstab, Buffer.from(req.fstab), { mode: 0o644 });
      progress(10, 'creating the first generation');
      await this.sys.mkdir(genDir(volume, id), 0o755);
      try {
        await this.makeRootFromImage(volume, id, req.image, art?.file ?? null, progress, sig);
        await this.renderFstabInto(volume, id);
        await this.btrfs.setReadOnly(genRoot(volume, id));
      } finally {
        if (art?.download) await this.sys.unlink(art.download);
      }
      const links = this.freshLinksId(id);
      await this.writeLinks(volume, links, shiftSlots(id, [], cfg.fallbacks));
      await this.sys.symlinkAtomic(currentTarget(links), p.nextCurrent);
      await this.sys.rename(p.nextCurrent, p.current);
      this.store.writeConfig(cfg);
      this.store.writeState({ statuses: { [id]: 'good' }, lastGood: id, trial: null, lastRollback: null });
      this.log.info('generations initialised', { volume: req.volume, generation: id });
      progress(100, `initialised ${req.volume} with generation ${id}`);
      return (await this.inventory())!;
    });
  }

  /**
   * Takes over a layout made by hand the wiki's way. Reads only: the volume is left exactly as
   * it is; the agent's config and state go to its own directory. The running generation counts
   * as good (it is what the device runs on).
   */
  adopt(req: { volume: string; fallbacks?: number; health?: Partial<GenerationsConfig['health']> }): Promise<GenerationsInventory> {
    return this.mutex.run(async () => {
      const volume = join(this.deps.root, req.volume);
      if (!(await this.btrfs.isBtrfs(volume))) throw new FatalError(`volume: ${req.volume} is not a mounted btrfs filesystem; mount the btrfs top level (subvolid=5) there first`);
      const l = await readLayout(this.sys, this.btrfs, volume);
      const problem = describeLayoutProblem(l, req.volume);
      if (problem) throw new FatalError(`volume: ${req.volume} does not hold the wiki's layout: ${problem}`);
      const cfg: GenerationsConfig = { volume: req.volume, fallbacks: req.fallbacks ?? Math.max(0, l.slots.length - 1), health: { ...defaultHealth(), ...req.health } };
      const old = this.store.readConfig();
      const moving = !!old && old.volume !== req.volume;
      if (moving) {
        // The trial, its way back and an interrupted operation belong to the old volume: they must end there first.
        if (this.store.readJournal()) throw new FatalError(`volume: an operation on ${old.volume} is journaled (interrupted or running); let it finish (the next generations job or agent start recovers it) before adopting ${req.volume}`);
        this.refuseDuringTrial(`adopt ${req.volume}`);
      }
      this.store.writeConfig(cfg);
      // Statuses and last-known-good of another volume mean nothing here.
      const state = moving ? emptyState() : this.store.readState();
      const cur = l.slots[0]!;
      state.statuses[cur] ??= 'good';
      state.lastGood ??= cur;
      this.store.writeState(state);
      this.log.info('generations layout adopted', { volume: req.volume, current: cur, generations: l.generations.length });
      return (await this.inventory())!;
    });
  }

  /** Writes the agent's settings (the section's configure / revert; null removes them), under the lock. */
  setConfig(cfg: GenerationsConfig | null): Promise<void> {
    return this.mutex.run(async () => {
      if (cfg) this.store.writeConfig(cfg);
      else if (existsSync(this.store.configPath)) removeDurableSync(this.store.configPath);
    });
  }

  // ---------------------------------------------------------------- upgrade

  upgrade(req: UpgradeRequest, progress: Progress = noProgress, signal?: AbortSignal): Promise<{ id: string; from: string; inventory: GenerationsInventory }> {
    return this.mutex.run(async () => {
      // A cancelled or timed-out job stops the running step (the command is killed); the new generation is then removed.
      const sig = signal ?? this.deps.signal;
      const cfg = this.requireConfig();
      const volume = this.volumeHost(cfg);
      await this.recoverLocked(cfg);
      this.refuseDuringTrial('upgrade');
      const from = this.sound(await this.layout(cfg)).id;
      const id = newId(new Date(this.now()));
      await this.clearStaleDownloads();
      // Hash-verified before anything on the volume changes: a bad artifact changes nothing.
      progress(2, req.from.kind === 'commands' ? `snapshotting ${from}` : `fetching and verifying the ${req.from.kind}`);
      const art = req.from.kind === 'commands' ? null : await this.fetchImage(req.from, id, sig);
      const links = this.freshLinksId(id);
      const journal: Journal = { op: 'upgrade', links, created: id, to: id, from, trial: req.trial, reason: null, markFromBad: false, download: art?.download ?? null, startedAtMs: this.now() };
      this.store.writeJournal(journal);
      failpoint('gen-journaled');
      try {
        await this.sys.mkdir(genDir(volume, id), 0o755);
        if (req.from.kind === 'commands') {
          await this.btrfs.snapshot(genRoot(volume, from), genRoot(volume, id));
          failpoint('gen-snapshotted');
        } else {
          await this.makeRootFromImage(volume, id, req.from, art!.file, progress, sig);
        }
        await this.renderFstabInto(volume, id);
        await this.runCommands(volume, id, req.commands, progress, sig);
        failpoint('gen-changed');
        progress(80, 'setting the new root read-only');
        await this.btrfs.setReadOnly(genRoot(volume, id));
        failpoint('gen-readonly');
        const prev = (await this.layout(cfg)).slots.filter((s): s is string => !!s);
        await this.writeLinks(volume, links, shiftSlots(id, prev, cfg.fallbacks));
        failpoint('gen-linked');
      } catch (err) {
        // Nothing points at the new generation yet: undo it now rather than at the next start.
        this.log.warn('upgrade failed; removing the new generation', { generation: id, error: errorMessage(err) });
        await this.discard(cfg, journal).catch((e: unknown) => this.log.error('removing the failed generation failed; the next start retries', { error: errorMessage(e) }));
        throw err;
      }
      progress(90, `switching current to ${id}`);
      await this.switchLinks(volume, links);
      this.finish(cfg, journal);
      progress(100, `switched to ${id}${req.trial ? ' (trial)' : ''}`);
      this.log.info('upgraded', { from, to: id, trial: req.trial });
      return { id, from, inventory: (await this.inventory())! };
    });
  }

  // ---------------------------------------------------------------- switch / rollback

  /**
   * Points `current` at `to` (default: the previous generation, `current/1`), the old ones
   * shifted behind it. `markFromBad` records the generation switched away from as bad (a
   * failed trial).
   */
  rollback(req: { to?: string; reason?: string; markFromBad?: boolean; signal?: AbortSignal }, progress: Progress = noProgress): Promise<GenerationsInventory> {
    return this.mutex.run(async () => {
      // Aborted while waiting for the lock (the agent stopping): nothing is started.
      req.signal?.throwIfAborted();
      const cfg = this.requireConfig();
      const volume = this.volumeHost(cfg);
      await this.recoverLocked(cfg);
      const l = await this.layout(cfg);
      const from = this.sound(l).id;
      const state = this.store.readState();
      const to = req.to ?? this.previousOf(l, state, from);
      if (!to) throw new FatalError(`there is no previous generation to roll back to (current is ${from} and no linked fallback is complete and not bad); name one with to`);
      if (!isValidId(to)) throw new FatalError(`to: '${to}' is not a generation id`);
      const g = l.generations.find((x) => x.id === to);
      if (!g) throw new FatalError(`to: generation ${to} does not exist on ${cfg.volume}; the inventory lists the generations`);
      if (!g.complete) throw new FatalError(`to: generation ${to} is not complete (its root is missing or not read-only); it cannot be booted`);
      if (to === from) {
        progress(100, `${to} is already current`);
        return (await this.inventory())!;
      }
      const links = this.freshLinksId(to);
      const journal: Journal = { op: 'switch', links, created: null, to, from, trial: false, reason: req.reason ?? null, markFromBad: req.markFromBad ?? false, download: null, startedAtMs: this.now() };
      this.store.writeJournal(journal);
      failpoint('gen-journaled');
      try {
        const prev = l.slots.filter((s): s is string => !!s);
        await this.writeLinks(volume, links, shiftSlots(to, prev, cfg.fallbacks));
        failpoint('gen-linked');
      } catch (err) {
        await this.discard(cfg, journal).catch(() => {});
        throw err;
      }
      await this.switchLinks(volume, links);
      this.finish(cfg, journal);
      this.log.warn('rolled back', { from, to, reason: req.reason ?? 'requested' });
      progress(100, `switched from ${from} to ${to}`);
      return (await this.inventory())!;
    });
  }

  /**
   * Building on a generation still on trial would make the new trial fall back to an unconfirmed
   * generation (and a failed check then rolls back to it): refused until the trial ends.
   */
  private refuseDuringTrial(what: string): void {
    const t = this.store.readState().trial;
    if (!t) return;
    const when = t.awaitingBoot ? 'it has not been booted yet (requireBoot)' : `its health check is pending (deadline ${new Date(t.deadlineAtMs).toISOString()})`;
    throw new FatalError(
      `cannot ${what}: generation ${t.id} is still on trial (${when}); wait until it is good (the agent reaches the controller and its checks pass) or roll it back to ${t.previous} with generations.rollback, then try again`,
    );
  }

  private previousOf(l: LayoutState, state: GenerationsState, from: string): string | undefined {
    const ok = (id: string | undefined) => !!id && id !== from && !!l.generations.find((g) => g.id === id && g.complete);
    // A failed trial goes back to where it came from.
    if (state.trial?.id === from && ok(state.trial.previous)) return state.trial.previous;
    // Never back into a generation known to be bad by default (name it explicitly to do that).
    return l.slots.find((s) => ok(s) && state.statuses[s!] !== 'bad');
  }

  // ---------------------------------------------------------------- trial

  /**
   * The trial passed: the generation becomes good and last-known-good. False (nothing written)
   * when it is no longer the trial or `signal` was aborted while this waited for the lock.
   */
  markGood(id: string, signal?: AbortSignal): Promise<boolean> {
    return this.mutex.run(async () => {
      if (signal?.aborted) return false;
      const state = this.store.readState();
      if (state.trial?.id !== id) return false;
      state.statuses[id] = 'good';
      state.lastGood = id;
      state.trial = null;
      this.store.writeState(state);
      this.log.info('generation passed its health check', { generation: id });
      return true;
    });
  }

  /**
   * At start: one boot counted per kernel boot of the trial generation. A trial generation that
   * booted with no boots left (it never passed its check) is given up. Returns why it must be
   * rolled back, if it must.
   */
  countBoot(): Promise<string | undefined> {
    return this.mutex.run(async () => {
      const cfg = this.store.readConfig();
      if (!cfg) return undefined;
      const state = this.store.readState();
      const t = state.trial;
      if (!t) return undefined;
      const { booted } = this.mountView(this.volumeHost(cfg));
      const bootId = this.bootId();
      if (booted === t.id && bootId && bootId !== t.countedBootId) {
        if (t.bootsLeft === 0) return `generation ${t.id} booted ${cfg.health.boots} time(s) without passing its health check`;
        t.bootsLeft -= 1;
        t.countedBootId = bootId;
        t.awaitingBoot = false;
        // The deadline runs from this boot: the agent needs time to start and connect.
        t.deadlineAtMs = this.now() + cfg.health.deadlineSec * 1000;
        this.store.writeState(state);
        this.log.info('counted a boot of the trial generation', { generation: t.id, bootsLeft: t.bootsLeft });
      }
      return undefined;
    });
  }

  // ---------------------------------------------------------------- GC

  /**
   * Deletes generations nothing needs: not in the current links directory, not booted, not
   * last-known-good, not on trial (nor its way back), not mounted anywhere; half-made ones from a
   * crash go too. Links directories other than the current one are removed. Idempotent: a GC
   * cut short leaves only more of the same for the next one.
   */
  gc(opts: { keep?: number } = {}, progress: Progress = noProgress): Promise<GcResult> {
    return this.mutex.run(async () => {
      const cfg = this.requireConfig();
      const volume = this.volumeHost(cfg);
      await this.recoverLocked(cfg);
      const l = await this.layout(cfg);
      this.sound(l);
      const state = this.store.readState();
      // Fail closed: without mountinfo the booted and mounted generations are unknown, and GC
      // would delete the running root once it left the links directory.
      const mounts = this.readMounts();
      if (!mounts) throw new FatalError(`cannot read ${this.mountinfoPath}: GC cannot tell which generations are booted or mounted; nothing was deleted`);
      const { booted, mounted } = this.mountView(volume, mounts);
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
      const spare = l.generations.filter((g) => g.complete && !why.has(g.id)).sort((a, b) => (b.createdAtMs ?? 0) - (a.createdAtMs ?? 0));
      for (const g of spare.slice(0, opts.keep ?? 0)) protect(g.id, 'kept');
      const victims = l.generations.filter((g) => !why.has(g.id));
      // Forget the victims' statuses before deleting anything: a GC killed half way must not leave
      // a half-deleted generation that the inventory still calls `good` (it shows `unknown`,
      // `complete: false`, and the next GC finishes it).
      for (const g of victims) delete state.statuses[g.id];
      if (victims.length) this.store.writeState(state);
      const deleted: string[] = [];
      for (const [i, g] of victims.entries()) {
        progress(Math.round((i / Math.max(1, victims.length)) * 90), `deleting ${g.id}`);
        await this.deleteGeneration(volume, g);
        deleted.push(g.id);
      }
      const removedLinks: string[] = [];
      for (const d of l.linksDirs) {
        if (d === l.currentLinks) continue;
        if (await this.removeLinksDir(volume, d)) removedLinks.push(d);
      }
      this.store.writeState(state);
      if (deleted.length) this.log.info('garbage-collected generations', { deleted: deleted.join(','), links: removedLinks.length });
      progress(100, `deleted ${deleted.length} generation(s)`);
      return { deleted, kept: [...why].map(([id, w]) => ({ id, why: w })), removedLinks };
    });
  }

  // ---------------------------------------------------------------- recovery

  /** Finishes or undoes an operation a crash interrupted. Safe to call at any time. */
  recover(): Promise<string | undefined> {
    return this.mutex.run(async () => {
      const cfg = this.store.readConfig();
      return cfg ? this.recoverLocked(cfg) : undefined;
    });
  }

  private async recoverLocked(cfg: GenerationsConfig): Promise<string | undefined> {
    const j = this.store.readJournal();
    if (!j) return undefined;
    const volume = this.volumeHost(cfg);
    const cur = await readCurrentLinks(this.sys, volume);
    if (cur === j.links) {
      // The rename happened: the new generation is what boots; record it.
      this.finish(cfg, j);
      this.log.warn(`finished an interrupted ${j.op}: current is ${j.to}`, { from: j.from });
      return `finished the interrupted ${j.op} to ${j.to}`;
    }
    await this.discard(cfg, j);
    this.log.warn(`rolled back an interrupted ${j.op}: current stays ${j.from}`, { abandoned: j.to });
    return `rolled back the interrupted ${j.op} to ${j.to}; current stays ${j.from}`;
  }

  /** Undoes an operation whose switch did not happen: its links dir and the generation it made. */
  private async discard(cfg: GenerationsConfig, j: Journal): Promise<void> {
    const volume = this.volumeHost(cfg);
    const p = volumePaths(volume);
    const nextSt = await this.sys.lstat(p.nextCurrent);
    if (nextSt?.isSymbolicLink()) await this.sys.unlink(p.nextCurrent);
    for (const name of await this.sys.readdir(p.next)) if (name.startsWith('.current.ibex-')) await this.sys.unlink(join(p.next, name));
    await this.removeLinksDir(volume, j.links);
    const l = await readLayout(this.sys, this.btrfs, volume);
    if (j.created && !l.slots.includes(j.created)) {
      const g = l.generations.find((x) => x.id === j.created);
      if (g) await this.deleteGeneration(volume, g);
    }
    await this.removeDownload(j.download);
    this.store.clearJournal();
  }

  /** The switch happened: state follows (trial, bad, last rollback), then the journal goes. */
  private finish(cfg: GenerationsConfig, j: Journal): void {
    const state = this.store.readState();
    if (j.markFromBad) state.statuses[j.from] = 'bad';
    if (j.op === 'switch') state.lastRollback = { from: j.from, to: j.to, reason: j.reason ?? 'requested', atMs: this.now() };
    if (state.trial && state.trial.id !== j.to) state.trial = null;
    if (j.trial) {
      state.statuses[j.to] = 'trial';
      state.trial = {
        id: j.to,
        previous: j.from,
        startedAtMs: this.now(),
        deadlineAtMs: this.now() + cfg.health.deadlineSec * 1000,
        bootsLeft: cfg.health.boots,
        countedBootId: null,
        awaitingBoot: cfg.health.requireBoot,
      };
    } else if (j.op === 'upgrade') {
      state.statuses[j.to] = 'good';
      state.lastGood = j.to;
    }
    this.store.writeState(state);
    void this.removeDownload(j.download).catch(() => {});
    this.store.clearJournal();
  }

  // ---------------------------------------------------------------- steps

  /** `current` must resolve to a complete read-only generation before anything builds on it. */
  private sound(l: LayoutState): GenerationOnDisk {
    const problem = describeLayoutProblem(l, this.store.readConfig()?.volume);
    if (problem) throw new FatalError(`the generations layout is not usable: ${problem}`);
    return currentGeneration(l)!;
  }

  private freshLinksId(avoid: string): string {
    let id = newId(new Date(this.now()));
    while (id === avoid) id = newId(new Date(this.now()));
    return id;
  }

  private async mkdirp(dir: string): Promise<void> {
    if (!(await this.sys.lstat(dir))) await this.sys.mkdir(dir, 0o755);
  }

  /**
   * A download is made before the journal names it (a bad one must change nothing), so a crash
   * during or just after it leaves a file nobody removes. Called under the lock with no operation
   * journaled: anything in the downloads directory then is such a leftover.
   */
  private async clearStaleDownloads(): Promise<void> {
    const dir = this.store.downloadsDir;
    for (const name of await this.sys.readdir(dir)) await this.sys.unlink(join(dir, name));
  }

  /** A journaled download, only ever inside the downloads directory (the journal is a file on disk). */
  private async removeDownload(file: string | null): Promise<void> {
    if (file && dirname(file) === this.store.downloadsDir) await this.sys.unlink(file);
  }

  private async fetchImage(src: Exclude<ImageSource, { kind: 'empty' }>, name: string, signal: AbortSignal | undefined) {
    if (src.path === undefined) return fetchVerified({ url: src.url! }, src.sha256, this.store.downloadsDir, name, signal);
    // Symlinks on the way resolve inside --root (as the device sees the path), never into the host.
    const { host } = await resolveUnderRoot(this.sys, this.deps.root, src.path).catch((err: unknown) => {
      throw err instanceof RootEscapeError ? new FatalError(`path: ${err.message}`) : err;
    });
    if ((await this.sys.lstat(host))?.isSymbolicLink()) throw new FatalError(`path: ${src.path} is a symlink; name the image file itself`);
    return fetchVerified({ hostPath: host }, src.sha256, this.store.downloadsDir, name, signal);
  }

  /** A new writable `snapshots/<id>/@` holding the image. */
  private async makeRootFromImage(volume: string, id: string, src: ImageSource, file: string | null, progress: Progress, signal: AbortSignal | undefined): Promise<void> {
    const root = genRoot(volume, id);
    if (src.kind === 'empty') {
      await this.btrfs.create(root);
      failpoint('gen-snapshotted');
      return;
    }
    if (src.kind === 'tarball') {
      await this.btrfs.create(root);
      failpoint('gen-snapshotted');
      progress(20, 'unpacking the tarball');
      // GNU tar refuses `..` and absolute member names and delays symlinks, so a hostile archive cannot write outside the new root.
      await run(this.sys, ['tar', '-x', '-f', file!, '-C', root, '--numeric-owner', '-p', '--xattrs', '--xattrs-include=*'], { signal });
      return;
    }
    // A send stream makes a read-only subvolume named by the sender: receive it aside, then take a
    // writable snapshot as `@` (fstab and commands still have to go in).
    progress(20, 'receiving the send stream');
    const recv = join(genDir(volume, id), '.receive');
    await this.sys.mkdir(recv, 0o755);
    await this.btrfs.receive(file!, recv, signal);
    const got = await this.sys.readdir(recv);
    if (got.length !== 1 || !(await this.btrfs.isSubvolume(join(recv, got[0]!)))) throw new FatalError(`the send stream must hold exactly one subvolume; it made ${got.length ? got.join(', ') : 'none'}`);
    await this.btrfs.snapshot(join(recv, got[0]!), root);
    failpoint('gen-snapshotted');
    await this.btrfs.delete(join(recv, got[0]!));
    await this.sys.rmdirIfEmpty(recv);
  }

  /** The wiki renders the volume's fstab template into each new root's /etc/fstab. */
  private async renderFstabInto(volume: string, id: string): Promise<void> {
    const p = volumePaths(volume);
    const st = await this.sys.lstat(p.fstab);
    if (!st?.isFile()) return;
    const etc = join(genRoot(volume, id), 'etc');
    // Never through a symlink: the image decides what /etc is, and it must not point outside.
    if (!(await this.sys.lstat(etc))?.isDirectory()) return;
    const text = renderFstab((await this.sys.readFile(p.fstab)).toString('utf8'), id);
    await this.sys.writeFileAtomic(join(etc, 'fstab'), Buffer.from(text), { mode: 0o644 });
  }

  private async runCommands(volume: string, id: string, commands: string[][], progress: Progress, signal: AbortSignal | undefined): Promise<void> {
    const self = this.deps.selfCommand ?? defaultSelfCommand();
    for (const [i, argv] of commands.entries()) {
      progress(25 + Math.round((i / commands.length) * 50), `running ${argv.join(' ')}`);
      signal?.throwIfAborted();
      // SIGKILL: unshare ignores SIGTERM while it waits; killing it kills the namespace (--kill-child).
      const r = await this.sys.exec(chrootArgv(self, genRoot(volume, id), argv), { signal, killSignal: 'SIGKILL' });
      if (r.code !== 0) {
        const tail = (r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ');
        throw new FatalError(`commands[${i}] (${argv.join(' ')}) failed in the new generation (${r.code === null ? `signal ${r.signal}` : `exit ${r.code}`})${tail ? `: ${tail}` : ''}; nothing was switched`);
      }
    }
  }

  private async writeLinks(volume: string, links: string, slots: readonly string[]): Promise<void> {
    const dir = linksDir(volume, links);
    await this.mkdirp(volumePaths(volume).links);
    await this.sys.mkdir(dir, 0o755);
    for (const [i, g] of slots.entries()) await this.sys.symlinkAtomic(slotTarget(g), join(dir, String(i)));
  }

  /** The switch: `next/current` -> `./links/<links>`, then ONE rename() over `current`, then fsync. */
  private async switchLinks(volume: string, links: string): Promise<void> {
    const p = volumePaths(volume);
    await this.mkdirp(p.next);
    await this.sys.symlinkAtomic(currentTarget(links), p.nextCurrent);
    failpoint('gen-next-linked');
    await this.sys.rename(p.nextCurrent, p.current);
    failpoint('gen-switched');
  }

  private async removeLinksDir(volume: string, links: string): Promise<boolean> {
    const dir = linksDir(volume, links);
    const st = await this.sys.lstat(dir);
    if (!st?.isDirectory()) return false;
    for (const n of await this.sys.readdir(dir)) {
      const e = await this.sys.lstat(join(dir, n));
      if (e?.isSymbolicLink() || e?.isFile()) await this.sys.unlink(join(dir, n));
    }
    return this.sys.rmdirIfEmpty(dir);
  }

  /** Subvolumes first (`@`, a half-received stream), then the directory; unknown content is left and logged. */
  private async deleteGeneration(volume: string, g: GenerationOnDisk): Promise<void> {
    const dir = genDir(volume, g.id);
    const recv = join(dir, '.receive');
    for (const n of await this.sys.readdir(recv)) if (await this.btrfs.isSubvolume(join(recv, n))) await this.btrfs.delete(join(recv, n));
    await this.sys.rmdirIfEmpty(recv);
    if (await this.btrfs.isSubvolume(join(dir, '@'))) {
      await this.btrfs.delete(join(dir, '@'));
      failpoint('gen-gc-deleted');
    }
    if (!(await this.sys.rmdirIfEmpty(dir))) this.log.warn('a generation directory still holds something that is not a subvolume; left in place', { dir });
  }
}
