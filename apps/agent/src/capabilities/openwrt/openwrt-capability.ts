import { join } from 'node:path';
import { type OpenwrtSection, type UciPackageName, openwrtSectionSchema } from '@ibex/spec';
import { FatalError, errorMessage } from '../../common/errors.js';
import { failpoint } from '../../common/failpoints.js';
import type { Capability, CapabilityContext, ExecutorMap } from '../../engine/capability.js';
import { readJsonSync, writeJsonAtomicSync } from '../../journal/atomic-file.js';
import { placeDeviceSymlink } from '../../system/device-file-writer.js';
import { resolveUnderRoot } from '../../system/root-path.js';
import { type RunningContainer, inNetns, ipNetnsArg, iwSetNetns, netnsIdOf, resolveContainer } from './container.js';
import { readLedger, updateLedger } from './ledger.js';
import { NO_SUCH_LINK, SYS_PHYS, exec, hostLinks, hostPhys, hostRoutes, insideLinks, insidePhys, iwProblem, run, runTolerating } from './openwrt-exec.js';
import { type NsRef, type OpenwrtActual, type OpenwrtStep, UCI, inverseOf, planOpenwrt, summarizeOpenwrtStep } from './openwrt-plan.js';
import { parseUci, sameUci } from './uci.js';

/**
 * The `openwrt` section (docs/openwrt.md). Every step records, before it acts, the steps that
 * undo it (`undo.json` in the section's backup directory, fsync'd); a failure half-way, a change
 * that is not confirmed in time, or an agent that died meanwhile replays them newest first.
 */

type Step<A extends OpenwrtStep['action']> = Extract<OpenwrtStep, { action: A }>;

/** The backup record the engine journals: the undo steps live beside it, in the backup directory. */
interface OpenwrtBackup {
  undoLog: string;
}

interface UndoGroup {
  /** What the forward step did (for logs). */
  did: string;
  undo: OpenwrtStep[];
}

const undoPath = (ctx: CapabilityContext) => join(ctx.backupDir, 'undo.json');

function appendUndo(ctx: CapabilityContext, step: OpenwrtStep): void {
  const undo = inverseOf(step);
  if (!undo.length) return;
  const log = (readJsonSync(undoPath(ctx)) as UndoGroup[] | undefined) ?? [];
  log.push({ did: summarizeOpenwrtStep(step).text, undo });
  writeJsonAtomicSync(undoPath(ctx), log);
}

/** The agent's own network namespace, where returned links and phys go. */
const agentNs = () => `/proc/${process.pid}/ns/net`;

/**
 * The container, checked to be the namespace the step was planned for. While undoing, a
 * container that restarted (or stopped) has taken what was in it along: nothing to undo there.
 */
async function sameNs(ctx: CapabilityContext, ns: NsRef, undoing: boolean): Promise<RunningContainer | undefined> {
  const c = await resolveContainer(ctx, ns.container);
  if (c.running && c.nsId === ns.nsId) return c;
  if (undoing) {
    ctx.log.info('openwrt: the namespace this was done in is gone; nothing to undo there', { was: `${ns.label} ${ns.nsId}`, now: c.running ? `${c.label} ${c.nsId}` : c.reason });
    return undefined;
  }
  throw new FatalError(`${ns.label} changed during the apply (${c.running ? `it is now ${c.label}, another network namespace` : c.reason}); the next apply starts over`);
}

const hostHas = async (ctx: CapabilityContext, name: string) => (await hostLinks(ctx)).find((l) => l.name === name);
const insideHas = async (ctx: CapabilityContext, c: RunningContainer, name: string) => (await insideLinks(ctx, c)).find((l) => l.name === name);
const ipIn = (c: RunningContainer, ...argv: string[]) => inNetns(c, ['ip', ...argv]);

/** Moves a host link into the container and gives it its name there (it may be half way: renamed, or moved but not renamed). */
async function moveIn(ctx: CapabilityContext, c: RunningContainer, tmp: string, name: string): Promise<void> {
  if (await insideHas(ctx, c, name)) return;
  if (!(await insideHas(ctx, c, tmp))) await run(ctx, ['ip', 'link', 'set', 'dev', tmp, 'netns', ipNetnsArg(c)], `moving ${tmp} into ${c.label}`);
  await run(ctx, ipIn(c, 'link', 'set', 'dev', tmp, 'name', name), `renaming ${tmp} to ${name} in ${c.label}`);
}

/** Sends a link of the container back to the agent's namespace and renames it `hostName` there (when that name is free). */
async function moveOut(ctx: CapabilityContext, c: RunningContainer, names: string[], hostName: string): Promise<void> {
  for (const n of names) {
    if (!(await insideHas(ctx, c, n))) continue;
    await run(ctx, ipIn(c, 'link', 'set', 'dev', n, 'down'), `bringing ${n} down in ${c.label}`);
    await run(ctx, ipIn(c, 'link', 'set', 'dev', n, 'netns', agentNs()), `returning ${n} from ${c.label} to the host`);
    break;
  }
  for (const n of names) {
    if (n === hostName || !(await hostHas(ctx, n))) continue;
    if (await hostHas(ctx, hostName)) {
      ctx.log.warn('openwrt: the returned port keeps its name: the host name is taken', { name: n, hostName });
      return;
    }
    await run(ctx, ['ip', 'link', 'set', 'dev', n, 'name', hostName], `renaming ${n} back to ${hostName}`);
    return;
  }
}

/** Removes the netns handle (a device path) when it is a symlink; anything else there is not the agent's. */
async function unlinkHandle(ctx: CapabilityContext, devicePath: string): Promise<void> {
  const host = (await resolveUnderRoot(ctx.sys, ctx.root, devicePath)).host;
  if ((await ctx.sys.lstat(host))?.isSymbolicLink()) await ctx.sys.unlink(host);
}

async function deleteHostLink(ctx: CapabilityContext, name: string): Promise<void> {
  await runTolerating(ctx, ['ip', 'link', 'del', 'dev', name], `deleting ${name}`, NO_SUCH_LINK);
}

const UCI_NOT_FOUND = /Entry not found/;

function stderrOf(r: { stderr: string }): string {
  return r.stderr.trim();
}

/** uci batch exits 0 even when a command failed (it prints the error and goes on): anything on stderr is a failure. */
async function uciBatch(ctx: CapabilityContext, c: RunningContainer, lines: string[], what: string): Promise<void> {
  const r = await exec(ctx, [...c.exec.prefix, UCI, 'batch'], { input: `${lines.join('\n')}\n`, env: c.exec.env });
  if (r.code !== 0 || stderrOf(r)) throw new FatalError(`${what}: uci batch in ${c.label} reported: ${stderrOf(r) || `exit ${r.code ?? r.signal}`}`);
}

async function uciRevert(ctx: CapabilityContext, c: RunningContainer, names: readonly string[]): Promise<void> {
  for (const n of names) await exec(ctx, [...c.exec.prefix, UCI, 'revert', n], { env: c.exec.env });
}

async function uciImport(ctx: CapabilityContext, c: RunningContainer, name: string, text: string, what: string): Promise<void> {
  await run(ctx, [...c.exec.prefix, UCI, 'import', name], what, { input: text, env: c.exec.env });
}

async function reload(ctx: CapabilityContext, c: RunningContainer, reloads: readonly string[][]): Promise<void> {
  for (const argv of reloads) await run(ctx, argv, `reloading (${argv.slice(c.exec.prefix.length).join(' ')}) in ${c.label}`, { env: c.exec.env });
}

/** Every executor, with `undoing` set when the revert replays it (then a gone namespace is no error). */
const act: { [A in OpenwrtStep['action']]: (step: Step<A>, ctx: CapabilityContext, undoing: boolean) => Promise<void> } = {
  async refuse(step) {
    throw new FatalError(step.reason);
  },

  async 'cleanup-gone'(step, ctx) {
    for (const s of step.shims) await deleteHostLink(ctx, s);
    if (step.handle) await unlinkHandle(ctx, step.handle);
    updateLedger(ctx.root, (l) => {
      l.links = [];
      l.phys = [];
      l.shims = [];
      delete l.handle;
    });
    throw new FatalError(step.reason);
  },

  async 'forget-stale'(step, ctx) {
    updateLedger(ctx.root, (l) => {
      l.links = l.links.filter((x) => !step.links.includes(x.name));
      l.phys = l.phys.filter((x) => !step.phys.includes(x.phy));
    });
  },

  async 'parent-up'(step, ctx) {
    await run(ctx, ['ip', 'link', 'set', 'dev', step.name, 'up'], `bringing ${step.name} up`);
  },

  async 'parent-down'(step, ctx) {
    await runTolerating(ctx, ['ip', 'link', 'set', 'dev', step.name, 'down'], `bringing ${step.name} down`, NO_SUCH_LINK);
  },

  async 'move-port'(step, ctx, undoing) {
    const c = await sameNs(ctx, step.ns, undoing);
    if (!c) return;
    if (!(await insideHas(ctx, c, step.name)) && !(await insideHas(ctx, c, step.tmp)) && !(await hostHas(ctx, step.tmp))) {
      if (!(await hostHas(ctx, step.hostName))) throw new FatalError(`host port ${step.hostName} is gone`);
      await run(ctx, ['ip', 'link', 'set', 'dev', step.hostName, 'down'], `bringing ${step.hostName} down`);
      await run(ctx, ['ip', 'link', 'set', 'dev', step.hostName, 'name', step.tmp], `renaming ${step.hostName} to ${step.tmp}`);
    }
    await moveIn(ctx, c, step.tmp, step.name);
    updateLedger(ctx.root, (l) => {
      l.links = [...l.links.filter((x) => x.name !== step.name), { name: step.name, type: 'port', nsId: c.nsId, hostName: step.hostName, mac: step.mac }];
    });
  },

  async 'return-port'(step, ctx, undoing) {
    const c = await sameNs(ctx, step.ns, undoing);
    if (c) await moveOut(ctx, c, [step.name, step.tmp], step.hostName);
    // Moved to the host but not renamed yet (or the rename back is all that is left).
    else if (await hostHas(ctx, step.tmp)) await run(ctx, ['ip', 'link', 'set', 'dev', step.tmp, 'name', step.hostName], `renaming ${step.tmp} back to ${step.hostName}`);
    updateLedger(ctx.root, (l) => {
      l.links = l.links.filter((x) => !(x.name === step.name && x.nsId === step.ns.nsId));
    });
  },

  async 'create-child'(step, ctx, undoing) {
    const c = await sameNs(ctx, step.ns, undoing);
    if (!c) return;
    if (!(await insideHas(ctx, c, step.name)) && !(await insideHas(ctx, c, step.tmp)) && !(await hostHas(ctx, step.tmp))) {
      const r = await exec(ctx, ['ip', 'link', 'add', 'link', step.parent, 'name', step.tmp, ...(step.mac ? ['address', step.mac] : []), 'type', step.kind, 'mode', step.mode]);
      if (r.code !== 0) {
        const out = `${r.stderr}${r.stdout}`.trim();
        if (/Unknown device type/.test(out)) throw new FatalError(`this kernel has no ${step.kind} support (ip link add ... type ${step.kind}: ${out}); load its module (modprobe ${step.kind}) or use another kind of link (macvlan, veth)`);
        throw new FatalError(`creating the ${step.kind} on ${step.parent} failed: ${out}`);
      }
    }
    await moveIn(ctx, c, step.tmp, step.name);
    updateLedger(ctx.root, (l) => {
      l.links = [...l.links.filter((x) => x.name !== step.name), { name: step.name, type: step.kind, nsId: c.nsId, mac: step.mac, parent: step.parent, mode: step.mode }];
    });
  },

  async 'create-veth'(step, ctx, undoing) {
    const c = await sameNs(ctx, step.ns, undoing);
    if (!c) return;
    if (!(await insideHas(ctx, c, step.name)) && !(await insideHas(ctx, c, step.tmp))) {
      if (!(await hostHas(ctx, step.tmp))) {
        await deleteHostLink(ctx, step.hostName);
        await run(ctx, ['ip', 'link', 'add', 'name', step.hostName, 'type', 'veth', 'peer', 'name', step.tmp, 'address', step.mac], `creating the veth pair ${step.hostName}`);
      }
    }
    await moveIn(ctx, c, step.tmp, step.name);
    await run(ctx, ['ip', 'link', 'set', 'dev', step.hostName, 'up'], `bringing ${step.hostName} up`);
    updateLedger(ctx.root, (l) => {
      l.links = [...l.links.filter((x) => x.name !== step.name), { name: step.name, type: 'veth', nsId: c.nsId, mac: step.mac, hostName: step.hostName }];
      l.shims = [...l.shims.filter((s) => s !== step.hostName), step.hostName];
    });
  },

  async 'delete-inside'(step, ctx, undoing) {
    const c = await sameNs(ctx, step.ns, undoing);
    if (c && (await insideHas(ctx, c, step.name))) await run(ctx, ipIn(c, 'link', 'del', 'dev', step.name), `deleting ${step.name} in ${c.label}`);
    if (step.hostEnd) await deleteHostLink(ctx, step.hostEnd);
    updateLedger(ctx.root, (l) => {
      l.links = l.links.filter((x) => !(x.name === step.name && x.nsId === step.ns.nsId));
      if (step.hostEnd) l.shims = l.shims.filter((s) => s !== step.hostEnd);
    });
  },

  async 'delete-host-link'(step, ctx) {
    await deleteHostLink(ctx, step.name);
    updateLedger(ctx.root, (l) => {
      l.shims = l.shims.filter((s) => s !== step.name);
    });
  },

  async 'create-shim'(step, ctx) {
    if (!(await hostHas(ctx, step.name))) {
      const r = await exec(ctx, ['ip', 'link', 'add', 'link', step.parent, 'name', step.name, 'type', step.kind, 'mode', step.mode]);
      if (r.code !== 0) {
        const out = `${r.stderr}${r.stdout}`.trim();
        throw new FatalError(/Unknown device type/.test(out) ? `this kernel has no ${step.kind} support for the shim ${step.name} (${out}); load its module or use a veth link` : `creating the shim ${step.name} on ${step.parent} failed: ${out}`);
      }
    }
    updateLedger(ctx.root, (l) => {
      l.shims = [...l.shims.filter((s) => s !== step.name), step.name];
    });
    await run(ctx, ['ip', 'link', 'set', 'dev', step.name, 'up'], `bringing ${step.name} up`);
  },

  async 'delete-shim'(step, ctx) {
    await deleteHostLink(ctx, step.name);
    updateLedger(ctx.root, (l) => {
      l.shims = l.shims.filter((s) => s !== step.name);
    });
  },

  async 'shim-config'(step, ctx) {
    if (!(await hostHas(ctx, step.name))) return;
    for (const r of step.delRoutes) await runTolerating(ctx, ['ip', 'route', 'del', r, 'dev', step.name], `removing the route ${r} from ${step.name}`, /No such process|No such device/);
    for (const a of step.delAddresses) await runTolerating(ctx, ['ip', 'addr', 'del', a, 'dev', step.name], `removing ${a} from ${step.name}`, /Cannot assign requested address|No such device/);
    for (const a of step.addAddresses) await run(ctx, ['ip', 'addr', 'replace', a, 'dev', step.name], `adding ${a} to ${step.name}`);
    if (step.up) await run(ctx, ['ip', 'link', 'set', 'dev', step.name, 'up'], `bringing ${step.name} up`);
    for (const r of step.addRoutes) await run(ctx, ['ip', 'route', 'replace', r, 'dev', step.name], `adding the route ${r} on ${step.name}`);
  },

  async 'move-phy'(step, ctx, undoing) {
    const c = await sameNs(ctx, step.ns, undoing);
    if (!c) return;
    if ((await ctx.sys.readdir(SYS_PHYS)).includes(step.phy)) {
      const argv = iwSetNetns(c, step.phy);
      const r = await exec(ctx, argv);
      if (r.code !== 0) throw new FatalError(iwProblem(r, `moving Wi-Fi ${step.phy} into ${c.label} (${argv.join(' ')})`));
    } else if (!(await insidePhys(ctx, c)).includes(step.phy)) throw new FatalError(`Wi-Fi ${step.phy} is neither on the host nor in ${c.label} any more (unplugged?)`);
    updateLedger(ctx.root, (l) => {
      l.phys = [...l.phys.filter((x) => x.radio !== step.radio), { radio: step.radio, phy: step.phy, mac: step.mac, matchKey: step.matchKey, nsId: c.nsId }];
    });
  },

  async 'return-phy'(step, ctx, undoing) {
    const c = await sameNs(ctx, step.ns, undoing);
    if (c && (await insidePhys(ctx, c)).includes(step.phy)) {
      const argv = inNetns(c, ['iw', 'phy', step.phy, 'set', 'netns', String(process.pid)]);
      const r = await exec(ctx, argv);
      if (r.code !== 0) throw new FatalError(iwProblem(r, `returning Wi-Fi ${step.phy} from ${c.label} to the host (${argv.join(' ')})`));
    }
    updateLedger(ctx.root, (l) => {
      l.phys = l.phys.filter((x) => !(x.phy === step.phy && x.nsId === step.ns.nsId));
    });
  },

  async 'link-handle'(step, ctx) {
    const r = await resolveUnderRoot(ctx.sys, ctx.root, step.path);
    for (const d of r.missingParents)
      await ctx.sys.mkdir(d, 0o755).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    await placeDeviceSymlink(ctx.sys, r.host, step.target);
    updateLedger(ctx.root, (l) => {
      l.handle = { path: step.path, target: step.target };
    });
  },

  async 'unlink-handle'(step, ctx) {
    await unlinkHandle(ctx, step.path);
    updateLedger(ctx.root, (l) => {
      if (l.handle?.path === step.path) delete l.handle;
    });
  },

  async 'uci-apply'(step, ctx, undoing) {
    const c = await sameNs(ctx, step.ns, undoing);
    if (!c) return;
    failpoint('openwrt-before-uci');
    const staged = step.packages.filter((p) => !p.create);
    if (staged.length) {
      // Stage everything first; commit only what staged cleanly (uci keeps staged changes until commit).
      try {
        await uciBatch(ctx, c, staged.flatMap((p) => p.batch), `changing ${staged.map((p) => p.name).join(', ')}`);
      } catch (err) {
        await uciRevert(ctx, c, staged.map((p) => p.name));
        throw err;
      }
      await uciBatch(ctx, c, staged.map((p) => `commit ${p.name}`), 'committing');
    }
    for (const p of step.packages.filter((x) => x.create)) await uciImport(ctx, c, p.name, p.after, `creating the ${p.name} package in ${c.label}`);
    await reload(ctx, c, step.reloads);
  },

  async reload(step, ctx, undoing) {
    const c = await sameNs(ctx, step.ns, undoing);
    if (c) await reload(ctx, c, step.reloads);
  },

  async 'uci-restore'(step, ctx, undoing) {
    const c = await sameNs(ctx, step.ns, undoing);
    if (!c) return;
    const changed: string[] = [];
    for (const p of step.packages) {
      const want = p.text ?? `package ${p.name}\n`;
      const now = await exec(ctx, [...c.exec.prefix, UCI, 'export', p.name], { env: c.exec.env });
      if (now.code === 0 && sameUci(parseUci(now.stdout, p.name), parseUci(want, p.name))) continue;
      await uciRevert(ctx, c, [p.name]);
      await uciImport(ctx, c, p.name, want, `restoring the ${p.name} package in ${c.label}`);
      changed.push(p.name);
    }
    if (changed.length) await reload(ctx, c, step.reloads);
  },
};

/** The engine's executors: each records its undo before it acts. */
const executors = Object.fromEntries(
  Object.entries(act).map(([action, fn]) => [
    action,
    async (step: OpenwrtStep, ctx: CapabilityContext) => {
      appendUndo(ctx, step);
      await (fn as (s: OpenwrtStep, c: CapabilityContext, u: boolean) => Promise<void>)(step, ctx, false);
    },
  ]),
) as unknown as ExecutorMap<OpenwrtStep>;

async function observeUci(ctx: CapabilityContext, c: RunningContainer, spec: OpenwrtSection): Promise<OpenwrtActual['uci']> {
  if (!spec.config) return undefined;
  const names: UciPackageName[] = ['network', ...(spec.config.wireless ? (['wireless'] as const) : []), 'dhcp', 'firewall'];
  const packages: Partial<Record<UciPackageName, string | null>> = {};
  for (const n of names) {
    let r;
    try {
      r = await exec(ctx, [...c.exec.prefix, UCI, 'export', n], { env: c.exec.env });
    } catch (err) {
      return { packages, error: errorMessage(err) };
    }
    if (r.code === 0) packages[n] = r.stdout;
    else if (UCI_NOT_FOUND.test(r.stderr)) packages[n] = null;
    else return { packages, error: `${[...c.exec.prefix, UCI, 'export', n].join(' ')} exited ${r.code ?? r.signal}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}` };
  }
  return { packages };
}

export const openwrtCapability: Capability<OpenwrtSection, OpenwrtActual, OpenwrtStep, OpenwrtBackup> = {
  section: 'openwrt',
  schema: openwrtSectionSchema,

  // A change of the router can cut the device off (its uplink may go through OpenWrt): it must be confirmed.
  confirmation(spec) {
    return { timeoutMs: spec.confirmTimeoutSec * 1000 };
  },

  async observe(ctx, spec) {
    const ledger = readLedger(ctx.root);
    const container = await resolveContainer(ctx, spec.container);
    const agentNsId = (await netnsIdOf(ctx.sys, '/proc/self/ns/net')) ?? 'net:[0]';
    const host = await hostLinks(ctx);
    const routes = await hostRoutes(ctx);
    const wifi = spec.links.some((l) => l.type === 'wifi') || ledger.phys.length > 0;
    const actual: OpenwrtActual = { container, agentNsId, host, hostRoutes: routes, inside: [], hostPhys: wifi ? await hostPhys(ctx) : [], insidePhys: [], ledger };
    if (spec.netnsName) {
      const path = `/run/netns/${spec.netnsName}`;
      const host = (await resolveUnderRoot(ctx.sys, ctx.root, path)).host;
      const st = await ctx.sys.lstat(host);
      actual.handle = { path, state: !st ? 'absent' : st.isSymbolicLink() ? 'symlink' : 'other', target: st?.isSymbolicLink() ? await ctx.sys.readlink(host) : undefined };
    }
    if (container.running && container.netns !== agentNsId) {
      actual.inside = await insideLinks(ctx, container);
      if (wifi)
        actual.insidePhys = await insidePhys(ctx, container).catch((err: unknown) => {
          actual.physError = errorMessage(err);
          return [];
        });
      actual.uci = await observeUci(ctx, container, spec);
    }
    return actual;
  },

  plan: planOpenwrt,
  summarize: summarizeOpenwrtStep,
  executors,

  async backup(ctx) {
    // The engine emptied the backup directory: the undo log starts empty.
    writeJsonAtomicSync(undoPath(ctx), []);
    return { undoLog: 'undo.json' };
  },

  async revert(ctx) {
    const log = (readJsonSync(undoPath(ctx)) as UndoGroup[] | undefined) ?? [];
    const errors: string[] = [];
    for (const g of [...log].reverse()) {
      for (const s of g.undo) {
        try {
          await (act[s.action] as (s: OpenwrtStep, c: CapabilityContext, u: boolean) => Promise<void>)(s, ctx, true);
        } catch (err) {
          errors.push(`undoing "${g.did}" (${summarizeOpenwrtStep(s).text}): ${errorMessage(err)}`);
        }
      }
    }
    if (errors.length) throw new Error(errors.join('; '));
  },
};
