import { dirname, join } from 'node:path';
import type { ArtifactEndpoint } from '../../artifacts/artifact-endpoint.js';
import { type ChrootSpec, type ChrootsSection, chrootsSectionSchema } from '@ibex/spec';
import { FatalError, errorMessage } from '../../common/errors.js';
import { failpoint } from '../../common/failpoints.js';
import type { Capability, CapabilityContext, ExecutorMap } from '../../engine/capability.js';
import { readJsonSync, writeJsonAtomicSync } from '../../journal/atomic-file.js';
import { resolveUnderRoot } from '../../system/root-path.js';
import { defaultSelfCommand } from '../generations/chroot-exec.js';
import type { MountEntry } from '../../system/mountinfo.js';
import { fetchInstallInput, installInput } from './chroot-fetch.js';
import { extractRootfs, installWithApkStatic } from './chroot-install.js';
import {
  type AgentCommand,
  type ChrootActual,
  type ChrootStep,
  type ChrootsActual,
  RECORD_FILE,
  hookFiles,
  isAtOrBelow,
  mergeAccounts,
  planChroots,
  stagingOf,
  summarizeChrootStep,
  withBlock,
} from './chroot-plan.js';
import { chrootDown, chrootTeardown, inChroot, mkdirp, mountOne, mountsBelow, readMounts, readRecord, removeTreeOneFs, serviceRunning, startServices, stopService } from './chroot-runtime.js';
import { writeDeviceFile } from '../../system/device-file-writer.js';

/**
 * The `chroots` section (docs/chroot.md). Like the openwrt section, every step records, before
 * it acts, how to take it back (`undo.json` in the section's backup directory, fsync'd): a
 * failure half-way, or an agent that died during the apply (recovered at the next start),
 * replays them newest first. An install is unpacked beside the chroot and renamed into place,
 * so an interrupted one leaves only the staging directory, which its undo removes.
 */

type Step<A extends ChrootStep['action']> = Extract<ChrootStep, { action: A }>;

/** What a file held before a step changed it. */
type Before = { kind: 'absent' } | { kind: 'file'; content: string; mode: number } | { kind: 'symlink'; target: string };

type Undo =
  | { undo: 'uninstall'; hostPath: string; name: string; root: string }
  | { undo: 'restore'; host: string; before: Before }
  | { undo: 'unmount'; point: string }
  | { undo: 'services'; hostPath: string; disable: string[] };

interface ChrootsBackup {
  undoLog: string;
}

const undoPath = (ctx: CapabilityContext) => join(ctx.backupDir, 'undo.json');

function pushUndo(ctx: CapabilityContext, ...entries: Undo[]): void {
  const log = (readJsonSync(undoPath(ctx)) as Undo[] | undefined) ?? [];
  log.push(...entries);
  writeJsonAtomicSync(undoPath(ctx), log);
}

/** `<root>/var/lib/ibex-agent/chroots.json`: chroot names to device paths, for `ibex-agent chroot enter NAME`. */
export const chrootIndexPath = (root: string) => join(root, 'var/lib/ibex-agent/chroots.json');

function updateIndex(root: string, name: string, path: string | undefined): void {
  const file = chrootIndexPath(root);
  const index = ((readJsonSync(file) as Record<string, string> | undefined) ?? {}) as Record<string, string>;
  if (path === undefined) delete index[name];
  else index[name] = path;
  writeJsonAtomicSync(file, index, 0o644);
}

async function beforeOf(ctx: CapabilityContext, host: string): Promise<Before> {
  const st = await ctx.sys.lstat(host);
  if (!st) return { kind: 'absent' };
  if (st.isSymbolicLink()) return { kind: 'symlink', target: await ctx.sys.readlink(host) };
  if (st.isFile()) return { kind: 'file', content: (await ctx.sys.readFile(host)).toString('utf8'), mode: st.mode & 0o7777 };
  throw new FatalError(`${host} is a directory or a special file; the agent writes only files there`);
}

async function restore(ctx: CapabilityContext, host: string, before: Before): Promise<void> {
  if (before.kind === 'absent') await ctx.sys.unlink(host);
  else if (before.kind === 'symlink') await ctx.sys.symlinkAtomic(before.target, host);
  else await writeDeviceFile(ctx.sys, host, Buffer.from(before.content), { mode: before.mode, symlink: 'replace' });
}

/** A path inside the chroot as a host path, symlinks inside resolved against the chroot (never the host). */
const insideHost = async (ctx: CapabilityContext, hostPath: string, inside: string) => resolveUnderRoot(ctx.sys, hostPath, inside.startsWith('/') ? inside : `/${inside}`);
const deviceHost = (ctx: CapabilityContext, path: string) => resolveUnderRoot(ctx.sys, ctx.root, path);

async function mkdirs(ctx: CapabilityContext, dirs: readonly string[]): Promise<void> {
  for (const d of dirs)
    await ctx.sys.mkdir(d, 0o755).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
}

/** Writes a file, recording first what it held. */
async function writeRecorded(ctx: CapabilityContext, r: { host: string; missingParents: string[] }, content: string | null, mode: number): Promise<void> {
  pushUndo(ctx, { undo: 'restore', host: r.host, before: await beforeOf(ctx, r.host) });
  if (content === null) return ctx.sys.unlink(r.host);
  await mkdirs(ctx, r.missingParents);
  await writeDeviceFile(ctx.sys, r.host, Buffer.from(content), { mode, symlink: 'replace' });
}

const deps = (ctx: CapabilityContext) => ({ sys: ctx.sys, log: ctx.log });

async function readText(ctx: CapabilityContext, host: string): Promise<string | null> {
  const st = await ctx.sys.lstat(host);
  return st?.isFile() ? (await ctx.sys.readFile(host)).toString('utf8') : null;
}

const act: { [A in ChrootStep['action']]: (step: Step<A>, ctx: CapabilityContext) => Promise<void> } = {
  async refuse(step) {
    throw new FatalError(step.reason);
  },

  async 'remove-staging'(step, ctx) {
    const staging = stagingOf(step.hostPath);
    if (mountsBelow(await readMounts(ctx.sys), staging).length) throw new FatalError(`${staging} has mounts below it; unmount them first`);
    await removeTreeOneFs(staging);
  },

  async install(step, ctx) {
    pushUndo(ctx, { undo: 'uninstall', hostPath: step.hostPath, name: step.name, root: ctx.root });
    const staging = stagingOf(step.hostPath);
    await removeTreeOneFs(staging);
    await mkdirp(ctx.sys, dirname(step.hostPath));
    await mkdirs(ctx, [staging]);
    const input = await installInput(ctx, step.name, step.source);
    if (step.source.kind === 'tarball') await extractRootfs(deps(ctx), input, staging);
    else await installWithApkStatic(deps(ctx), input, staging, step.arch, step.repositories, step.source.keys);
    // Marked as ours before it takes the chroot's name: a crash after the rename finds an Ibex chroot.
    writeJsonAtomicSync(join(staging, RECORD_FILE), step.record, 0o644);
    failpoint('chroot-extracted');
    if ((await ctx.sys.lstat(step.hostPath))?.isDirectory() && !(await ctx.sys.rmdirIfEmpty(step.hostPath))) throw new FatalError(`${step.hostPath} is no longer empty; the install is not moved there`);
    await ctx.sys.rename(staging, step.hostPath);
    updateIndex(ctx.root, step.name, step.record.path);
  },

  async 'write-file'(step, ctx) {
    await writeRecorded(ctx, await insideHost(ctx, step.hostPath, step.inside), step.content, step.mode);
  },

  async accounts(step, ctx) {
    const p = await insideHost(ctx, step.hostPath, '/etc/passwd');
    const g = await insideHost(ctx, step.hostPath, '/etc/group');
    const merged = mergeAccounts((await readText(ctx, p.host)) ?? '', (await readText(ctx, g.host)) ?? '', step.users, step.groups);
    await writeRecorded(ctx, p, merged.passwd, 0o644);
    await writeRecorded(ctx, g, merged.group, 0o644);
  },

  async record(step, ctx) {
    await writeRecorded(ctx, { host: join(step.hostPath, RECORD_FILE), missingParents: [] }, `${JSON.stringify(step.record, null, 2)}\n`, 0o644);
    updateIndex(ctx.root, step.name, step.record.path);
  },

  async mount(step, ctx) {
    const point = step.mount.target === '/' ? step.hostPath : join(step.hostPath, step.mount.target);
    pushUndo(ctx, { undo: 'unmount', point });
    await mountOne(deps(ctx), step.hostPath, step.mount);
    failpoint('chroot-mounted');
  },

  async unmount(step, ctx) {
    const r = await ctx.sys.exec(['umount', step.target]);
    if (r.code !== 0) throw new FatalError(`unmounting ${step.target} failed: ${r.stderr.trim()}; stop what uses it and apply again`);
  },

  async packages(step, ctx) {
    // apk changes are not undone: a half-applied package set is planned again by the next apply.
    const apk = (args: string[]) => ctx.sys.exec(inChroot(step.hostPath, ['/sbin/apk', '--no-progress', ...args]));
    for (const [verb, list] of [['add', step.add], ['del', step.del]] as const) {
      if (!list.length) continue;
      const r = await apk([verb, ...list]);
      if (r.code !== 0) throw new FatalError(`apk ${verb} ${list.join(' ')} in chroot ${step.name} failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`);
    }
  },

  async services(step, ctx) {
    const d = deps(ctx);
    for (const s of [...step.stop, ...step.disable]) await stopService(d, step.hostPath, s);
    for (const s of step.disable) await ctx.sys.unlink(join(step.hostPath, 'etc/runlevels/default', s));
    pushUndo(ctx, { undo: 'services', hostPath: step.hostPath, disable: step.enable });
    for (const s of step.enable) {
      if (!(await ctx.sys.lstat(join(step.hostPath, 'etc/init.d', s)))?.isFile())
        throw new FatalError(`chroot ${step.name} has no OpenRC service ${s} (/etc/init.d/${s}); add the package that provides it to packages`);
      await mkdirs(ctx, [join(step.hostPath, 'etc/runlevels'), join(step.hostPath, 'etc/runlevels/default')]);
      await ctx.sys.symlinkAtomic(`/etc/init.d/${s}`, join(step.hostPath, 'etc/runlevels/default', s));
    }
    if (step.start) await startServices(d, step.hostPath);
  },

  async hook(step, ctx) {
    const r = await deviceHost(ctx, step.file);
    // Replacing a linked script with a file would cut off whoever owns the link target (Entware, amtm).
    if ((await ctx.sys.lstat(r.host))?.isSymbolicLink()) throw new FatalError(`${step.file} is a symlink (to ${await ctx.sys.readlink(r.host)}); the agent edits only a plain file there: replace the link by a copy, or choose boot kind "none" and call ibex-agent chroot up from it yourself`);
    const next = withBlock(await readText(ctx, r.host), step.name, step.block);
    if (next !== null) await writeRecorded(ctx, r, next, 0o755);
  },

  async 'hook-file'(step, ctx) {
    await writeRecorded(ctx, await deviceHost(ctx, step.file), step.content, step.mode);
  },

  async 'hook-link'(step, ctx) {
    const r = await deviceHost(ctx, step.file);
    pushUndo(ctx, { undo: 'restore', host: r.host, before: await beforeOf(ctx, r.host) });
    if (step.target === null) return ctx.sys.unlink(r.host);
    await mkdirs(ctx, r.missingParents);
    await ctx.sys.symlinkAtomic(step.target, r.host);
  },

  async teardown(step, ctx) {
    // Not undone: a half-done teardown is finished by the next apply (the record is the last thing deleted).
    await chrootDown(deps(ctx), step.hostPath, step.services);
    failpoint('chroot-unmounted');
    await chrootTeardown(deps(ctx), step.hostPath, step.services);
    updateIndex(ctx.root, step.name, undefined);
  },
};

const executors: ExecutorMap<ChrootStep> = act;

async function undoOne(ctx: CapabilityContext, u: Undo): Promise<void> {
  switch (u.undo) {
    case 'restore':
      return restore(ctx, u.host, u.before);
    case 'unmount': {
      if (!(await readMounts(ctx.sys)).some((m) => m.mountPoint === u.point)) return;
      const r = await ctx.sys.exec(['umount', '--recursive', u.point]);
      if (r.code !== 0) throw new Error(`umount ${u.point}: ${r.stderr.trim()}`);
      return;
    }
    case 'services':
      for (const s of u.disable) {
        if (await serviceRunning(ctx.sys, u.hostPath, s).catch(() => false)) await stopService(deps(ctx), u.hostPath, s);
        await ctx.sys.unlink(join(u.hostPath, 'etc/runlevels/default', s));
      }
      return;
    case 'uninstall': {
      await chrootTeardown(deps(ctx), stagingOf(u.hostPath), []);
      // Anything at the path now came from this install (it was absent or empty before).
      if (readRecord(u.hostPath)) await chrootTeardown(deps(ctx), u.hostPath, readRecord(u.hostPath)!.services);
      updateIndex(u.root, u.name, undefined);
      return;
    }
  }
}

/** The filesystem holding `host` (or its nearest existing parent): the last, longest mount point above it. */
function filesystemOf(mounts: readonly MountEntry[], host: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const m of mounts) if (isAtOrBelow(host, m.mountPoint) && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
  return best;
}

const stripRoot = (root: string, host: string) => (root === '/' ? host : host === root ? '/' : host.startsWith(`${root}/`) ? host.slice(root.length) : host);

async function observeOne(ctx: CapabilityContext, name: string, spec: ChrootSpec, mounts: readonly MountEntry[]): Promise<ChrootActual> {
  const hostPath = (await deviceHost(ctx, spec.path)).host;
  const st = await ctx.sys.lstat(hostPath);
  const record = st?.isDirectory() ? readRecord(hostPath) : undefined;
  const state: ChrootActual['state'] = !st ? 'absent' : !st.isDirectory() ? 'foreign' : record ? 'ours' : (await ctx.sys.readdir(hostPath)).length ? 'foreign' : 'empty-dir';
  const fs = filesystemOf(mounts, hostPath);
  const a: ChrootActual = {
    hostPath,
    state,
    stagingLeft: (await ctx.sys.lstat(stagingOf(hostPath))) !== undefined,
    fsType: fs?.fsType,
    diskMount: fs ? stripRoot(ctx.root, fs.mountPoint) : undefined,
    record,
    mounts: mountsBelow(mounts, hostPath).map((m) => m.mountPoint),
    files: {},
    packages: null,
    services: {},
    hostResolv: await readText(ctx, (await deviceHost(ctx, '/etc/resolv.conf')).host),
    hooks: {},
    bindSources: [],
  };
  for (const m of spec.mounts) a.bindSources.push((await deviceHost(ctx, m.source)).host);
  for (const file of new Set([...hookFiles(name, spec.boot), ...(record ? hookFiles(name, record.boot) : [])])) {
    const host = (await deviceHost(ctx, file)).host;
    const s = await ctx.sys.lstat(host);
    a.hooks[file] = s?.isSymbolicLink() ? `-> ${await ctx.sys.readlink(host)}` : await readText(ctx, host);
  }
  if (state !== 'ours') return a;
  for (const inside of ['/etc/hostname', '/etc/resolv.conf', '/etc/apk/repositories', '/etc/passwd', '/etc/group', 'enter-chroot']) a.files[inside] = await readText(ctx, (await insideHost(ctx, hostPath, inside)).host);
  const db = await readText(ctx, (await insideHost(ctx, hostPath, '/lib/apk/db/installed')).host);
  if (db !== null) a.packages = db.split('\n').filter((l) => l.startsWith('P:')).map((l) => l.slice(2).trim());
  const runMounted = a.mounts.includes(join(hostPath, 'run'));
  for (const s of new Set([...spec.services, ...record!.services])) {
    const exists = (await ctx.sys.lstat(join(hostPath, 'etc/init.d', s)))?.isFile() ?? false;
    const enabled = (await ctx.sys.lstat(join(hostPath, 'etc/runlevels/default', s))) !== undefined;
    a.services[s] = { exists, enabled, running: exists && runMounted && (await serviceRunning(ctx.sys, hostPath, s)) };
  }
  return a;
}

/** How hooks and enter-chroot run this agent: its binary (or node + main.js), with --root when it is not /. */
export function agentCommandFor(root: string): AgentCommand {
  return { self: defaultSelfCommand(), flags: root === '/' ? [] : ['--root', root] };
}

/** `artifacts`: where controller artifacts named as a source are downloaded from (absent at the console). */
export const chrootsCapability = (artifacts?: ArtifactEndpoint): Capability<ChrootsSection, ChrootsActual, ChrootStep, ChrootsBackup> => ({
  section: 'chroots',
  schema: chrootsSectionSchema,

  async observe(ctx, spec) {
    const mounts = await readMounts(ctx.sys);
    const chroots: Record<string, ChrootActual> = {};
    for (const [name, c] of Object.entries(spec)) chroots[name] = await observeOne(ctx, name, c, mounts);
    return { chroots, agentCommand: agentCommandFor(ctx.root) };
  },

  plan: planChroots,
  summarize: summarizeChrootStep,
  executors,

  async backup(ctx, steps) {
    // Downloads and checksums come first: a wrong hash fails the apply before anything is journaled or written.
    for (const s of steps) if (s.action === 'install') await fetchInstallInput(ctx, s.name, s.source, artifacts);
    writeJsonAtomicSync(undoPath(ctx), []);
    return { undoLog: 'undo.json' };
  },

  async revert(ctx) {
    const log = (readJsonSync(undoPath(ctx)) as Undo[] | undefined) ?? [];
    const errors: string[] = [];
    for (const u of [...log].reverse()) {
      try {
        await undoOne(ctx, u);
      } catch (err) {
        errors.push(`${u.undo}: ${errorMessage(err)}`);
      }
    }
    if (errors.length) throw new Error(errors.join('; '));
  },
});
