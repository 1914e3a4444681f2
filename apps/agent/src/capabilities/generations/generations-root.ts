import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GenerationsInventory } from '@ibex/spec';
import type { ArtifactEndpoint } from '../../artifacts/artifact-endpoint.js';
import { FatalError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { Mutex } from '../../common/mutex.js';
import { defaultDataDir } from '../../journal/data-dir.js';
import type { SystemAdapter } from '../../system/system-adapter.js';
import { Btrfs } from './btrfs.js';
import { defaultSelfCommand } from './chroot-exec.js';
import { type GenerationsConfig, GenerationsStore, generationsRecordsDir } from './generations-store.js';
import { type LayoutState, readLayout } from './layout-read.js';
import { resolveInRoot } from './volume-path.js';
import { type MountEntry, bootedGeneration, mountedGenerations, parseMountinfo, volumeSource } from './mountinfo.js';

export type Progress = (percent: number, message: string) => void;
export const noProgress: Progress = () => {};

export interface GenerationsRootDeps {
  root: string;
  /** The agent's data dir; its records go to `<dataDir>/generations` (default `<root>/var/lib/ibex-agent`). */
  dataDir?: string;
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
  /** Where controller artifacts are downloaded from (only a connected agent has it). */
  artifacts?: ArtifactEndpoint;
}

export const defaultHealth = (): GenerationsConfig['health'] => ({ deadlineSec: 600, boots: 2, checks: [], requireBoot: false });

/**
 * The btrfs generations of one --root, as every part of the agent shares them: the agent's
 * records (`store`), the btrfs commands, and the one `lock` under which every operation that
 * writes runs, so the `generations` section, the generations jobs and the trial monitor never
 * interleave on the volume and its records. Build one per --root and pass it to all of them
 * (agent/registry.ts, agent/agent.ts): the lock covers this process only; another process
 * (an `ibex-agent apply` run by hand while the agent runs) is not covered by it.
 *
 * This class only reads; the operations are functions of their own, taking it first:
 * init-adopt.ts, upgrade.ts, rollback.ts, gc.ts, trial-state.ts, and generations-journal.ts
 * (the journaled change that upgrade and rollback make, and its recovery at start).
 */
export class GenerationsRoot {
  readonly root: string;
  readonly sys: SystemAdapter;
  readonly log: Logger;
  readonly store: GenerationsStore;
  readonly btrfs: Btrfs;
  readonly lock = new Mutex();
  readonly now: () => number;
  readonly selfCommand: readonly string[];
  readonly artifacts: ArtifactEndpoint | undefined;

  constructor(private readonly deps: GenerationsRootDeps) {
    this.root = deps.root;
    this.sys = deps.sys;
    this.log = deps.log;
    this.store = new GenerationsStore(generationsRecordsDir(deps.dataDir ?? defaultDataDir(deps.root)));
    this.btrfs = new Btrfs(deps.sys);
    this.now = deps.now ?? Date.now;
    this.selfCommand = deps.selfCommand ?? defaultSelfCommand();
    this.artifacts = deps.artifacts;
  }

  /** Host path of the volume named in the config (a device path under --root, symlinks resolved there). */
  volumeHost(cfg: Pick<GenerationsConfig, 'volume'>): string {
    return resolveInRoot(this.root, cfg.volume);
  }

  config(): GenerationsConfig | undefined {
    return this.store.readConfig();
  }

  requireConfig(): GenerationsConfig {
    const c = this.store.readConfig();
    if (!c) throw new FatalError(`no generations volume is configured (${this.store.configPath} is missing); run the generations.init or generations.adopt job first`);
    return c;
  }

  get mountinfoPath(): string {
    return this.deps.mountinfoPath ?? join(this.root, 'proc/self/mountinfo');
  }

  /** The mounts, or null when mountinfo cannot be read. */
  readMounts(): MountEntry[] | null {
    try {
      return parseMountinfo(readFileSync(this.mountinfoPath, 'utf8'));
    } catch {
      return null;
    }
  }

  /** The generation the running system booted and every generation some mount uses. */
  mountView(volume: string, mounts: readonly MountEntry[] = this.readMounts() ?? []): { booted: string | undefined; mounted: Set<string> } {
    const source = volumeSource(mounts, volume);
    return { booted: bootedGeneration(mounts, this.deps.rootMountPoint ?? '/', source), mounted: mountedGenerations(mounts, source) };
  }

  bootId(): string | null {
    try {
      return readFileSync(this.deps.bootIdPath ?? join(this.root, 'proc/sys/kernel/random/boot_id'), 'utf8').trim() || null;
    } catch {
      return null;
    }
  }

  async layout(cfg = this.requireConfig()): Promise<LayoutState> {
    return readLayout(this.sys, this.btrfs, this.volumeHost(cfg));
  }

  /** What the facts and every job result show; undefined when no volume is configured. */
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

  /** The inventory after an operation that must have left a configured volume. */
  async inventoryNow(): Promise<GenerationsInventory> {
    return (await this.inventory())!;
  }
}
