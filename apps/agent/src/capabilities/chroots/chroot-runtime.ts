import { lstat, readdir, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FatalError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { readJsonSync } from '../../journal/atomic-file.js';
import { RootEscapeError, resolveUnderRoot } from '../../system/root-path.js';
import type { SystemAdapter } from '../../system/system-adapter.js';
import { type MountEntry, parseMountinfo } from '../../system/mountinfo.js';
import { type ChrootMount, type ChrootRecord, RECORD_FILE, isAtOrBelow, mountPointOf } from './chroot-plan.js';
import { writeDeviceFile } from '../../system/device-file-writer.js';

/**
 * Running a chroot: its mounts, OpenRC inside it, its processes, taking it down. Used by the
 * capability's executors and by `ibex-agent chroot up|down|enter` (boot hooks, the console).
 * Every program runs with an argument array; mounts are found in /proc/self/mountinfo by exact,
 * unescaped path.
 */

export interface RuntimeDeps {
  sys: SystemAdapter;
  log: Logger;
}

/** A clean environment inside: nothing of the agent's (or the router's) settings leaks in. */
export const CHROOT_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8', TERM: 'linux' };
const envArgs = () => Object.entries(CHROOT_ENV).map(([k, v]) => `${k}=${v}`);

/** argv that runs `argv` inside the chroot with a clean environment (alpine-chroot-install's `env -i`). */
export function inChroot(hostPath: string, argv: readonly string[], env: Record<string, string> = {}): [string, ...string[]] {
  return ['chroot', hostPath, '/usr/bin/env', '-i', ...envArgs(), ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv];
}

export async function readMounts(sys: SystemAdapter): Promise<MountEntry[]> {
  return parseMountinfo((await sys.readFile('/proc/self/mountinfo')).toString('utf8'));
}

/** Mount points at or below `hostPath` (exact components: /x/alpine-2 is not below /x/alpine), in mount order. */
export function mountsBelow(mounts: readonly MountEntry[], hostPath: string): MountEntry[] {
  return mounts.filter((m) => isAtOrBelow(m.mountPoint, hostPath));
}

export function readRecord(hostPath: string): ChrootRecord | undefined {
  try {
    const r = readJsonSync(join(hostPath, RECORD_FILE)) as ChrootRecord | undefined;
    return r?.version === 1 ? r : undefined;
  } catch {
    return undefined;
  }
}

async function run(d: RuntimeDeps, argv: [string, ...string[]], what: string): Promise<string> {
  const r = await d.sys.exec(argv);
  if (r.code !== 0) throw new FatalError(`${what} failed (${argv.join(' ')}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ') || `exit ${r.code ?? r.signal}`}`);
  return r.stdout;
}

export async function mkdirp(sys: SystemAdapter, dir: string): Promise<void> {
  await sys.mkdir(dir, 0o755).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') {
      await mkdirp(sys, join(dir, '..'));
      await sys.mkdir(dir, 0o755).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
    } else if (err.code !== 'EEXIST') throw err;
  });
}

/**
 * Makes one mount (the research's steps: proc; rbind + make-rprivate for /sys and /dev so their
 * submounts do not propagate back; a fresh tmpfs /run; bind + make-private for extra binds).
 */
export async function mountOne(d: RuntimeDeps, hostPath: string, m: ChrootMount): Promise<void> {
  const point = mountPointOf(hostPath, m.target);
  await refuseSymlinkTarget(d.sys, hostPath, m.target);
  if (m.kind === 'bind') {
    const src = await d.sys.lstat(m.source);
    if (!src) throw new FatalError(`the bind source ${m.source} does not exist; create it or remove the mount from the spec`);
    if (src.isDirectory()) await mkdirp(d.sys, point);
    else if (!(await d.sys.lstat(point))) {
      await mkdirp(d.sys, join(point, '..'));
      await writeDeviceFile(d.sys, point, new Uint8Array(), { mode: 0o644, symlink: 'replace' });
    }
  } else await mkdirp(d.sys, point);
  switch (m.kind) {
    case 'proc':
      await run(d, ['mount', '-t', 'proc', 'proc', point], `mounting proc on ${point}`);
      return;
    case 'tmpfs':
      await run(d, ['mount', '-t', 'tmpfs', '-o', 'mode=0755,nosuid,nodev', 'tmpfs', point], `mounting a tmpfs on ${point}`);
      return;
    case 'rbind':
      await run(d, ['mount', '--rbind', m.source, point], `binding ${m.source} on ${point}`);
      await run(d, ['mount', '--make-rprivate', point], `making ${point} private`);
      return;
    case 'bind':
      await run(d, ['mount', '--bind', m.source, point], `binding ${m.source} on ${point}`);
      await run(d, ['mount', '--make-private', point], `making ${point} private`);
      if (m.readOnly) await run(d, ['mount', '-o', 'remount,bind,ro', point], `making ${point} read-only`);
      return;
  }
}

/**
 * mount(8) follows symlinks in its target on the host: a link inside the chroot (`mnt -> /etc`)
 * would put the bind on the host's /etc. Targets must be real directories inside the chroot.
 */
async function refuseSymlinkTarget(sys: SystemAdapter, hostPath: string, target: string): Promise<void> {
  if (target === '/') return;
  let host: string | undefined;
  try {
    host = (await resolveUnderRoot(sys, hostPath, target)).host;
  } catch (err) {
    if (!(err instanceof RootEscapeError)) throw err;
  }
  if (host !== mountPointOf(hostPath, target) || (await sys.lstat(host))?.isSymbolicLink())
    throw new FatalError(`the mount target ${target} inside the chroot ${hostPath} is or goes through a symlink; the agent mounts only on real directories inside the chroot (remove the link)`);
}

/** The chroot's mounts that are missing, made in order (idempotent: a boot hook runs this). */
export async function ensureMounts(d: RuntimeDeps, hostPath: string, mounts: readonly ChrootMount[]): Promise<number> {
  let made = 0;
  for (const m of mounts) {
    const have = new Set(mountsBelow(await readMounts(d.sys), hostPath).map((e) => e.mountPoint));
    if (have.has(mountPointOf(hostPath, m.target))) continue;
    await mountOne(d, hostPath, m);
    made++;
  }
  return made;
}

export interface Holder {
  pid: number;
  comm: string;
  how: string;
}

async function linkOf(sys: SystemAdapter, p: string): Promise<string | undefined> {
  try {
    return await sys.readlink(p);
  } catch {
    return undefined;
  }
}

async function commOf(sys: SystemAdapter, pid: number): Promise<string> {
  return (await sys.readFile(`/proc/${pid}/comm`).catch(() => Buffer.from('?'))).toString().trim();
}

async function pids(sys: SystemAdapter): Promise<number[]> {
  return (await sys.readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number).filter((p) => p !== process.pid);
}

/** Processes chrooted into `hostPath` (their root is it or below it). */
export async function chrootProcesses(sys: SystemAdapter, hostPath: string): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await pids(sys)) {
    const root = await linkOf(sys, `/proc/${pid}/root`);
    if (root !== undefined && isAtOrBelow(root, hostPath)) out.push(pid);
  }
  return out;
}

/** Processes outside the chroot that keep something below it busy (cwd, open file, executable). */
export async function holdersBelow(sys: SystemAdapter, hostPath: string): Promise<Holder[]> {
  const out: Holder[] = [];
  for (const pid of await pids(sys)) {
    const hit = async (how: string, link: string) => {
      const t = await linkOf(sys, link);
      if (t !== undefined && isAtOrBelow(t, hostPath)) {
        out.push({ pid, comm: await commOf(sys, pid), how: `${how} ${t}` });
        return true;
      }
      return false;
    };
    if ((await hit('its working directory is', `/proc/${pid}/cwd`)) || (await hit('runs', `/proc/${pid}/exe`))) continue;
    for (const fd of await sys.readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) if (await hit('has open', `/proc/${pid}/fd/${fd}`)) break;
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** TERM, up to `graceMs` for them to go, then KILL (the research's destroy variant). */
export async function stopProcesses(d: RuntimeDeps, hostPath: string, graceMs = 5000): Promise<number> {
  let left = await chrootProcesses(d.sys, hostPath);
  if (!left.length) return 0;
  const n = left.length;
  d.log.info('chroot: stopping its processes', { path: hostPath, pids: left.join(' ') });
  await d.sys.exec(['kill', '-TERM', ...left.map(String)]);
  const until = Date.now() + graceMs;
  while (left.length && Date.now() < until) {
    await sleep(100);
    left = await chrootProcesses(d.sys, hostPath);
  }
  if (left.length) {
    d.log.warn('chroot: processes did not stop on TERM; killing them', { path: hostPath, pids: left.join(' ') });
    await d.sys.exec(['kill', '-KILL', ...left.map(String)]);
    for (let i = 0; i < 50 && (await chrootProcesses(d.sys, hostPath)).length; i++) await sleep(100);
  }
  return n;
}

/**
 * OpenRC inside: it refuses to run on a system it did not boot unless /run/openrc/softlevel
 * exists (and /run is a fresh tmpfs, so no stale "already starting"). Only the `default`
 * runlevel is ever run: `shutdown` would kill and remount the host's processes and filesystems.
 */
export async function startServices(d: RuntimeDeps, hostPath: string): Promise<void> {
  await mkdirp(d.sys, join(hostPath, 'run/openrc'));
  if (!(await d.sys.lstat(join(hostPath, 'run/openrc/softlevel')))) await writeDeviceFile(d.sys, join(hostPath, 'run/openrc/softlevel'), new Uint8Array(), { mode: 0o644, symlink: 'replace' });
  await run(d, inChroot(hostPath, ['/sbin/openrc', 'default']), 'starting OpenRC\'s default runlevel in the chroot');
}

export async function stopService(d: RuntimeDeps, hostPath: string, service: string): Promise<void> {
  const r = await d.sys.exec(inChroot(hostPath, ['/sbin/rc-service', service, 'stop']));
  if (r.code !== 0) d.log.warn('chroot: stopping a service failed; its processes are killed with the rest', { service, error: (r.stderr || r.stdout).trim() });
}

export async function serviceRunning(sys: SystemAdapter, hostPath: string, service: string): Promise<boolean> {
  return (await sys.exec(inChroot(hostPath, ['/sbin/rc-service', service, 'status']))).code === 0;
}

/** Copies the host's resolv.conf in (a copy, not a bind: the router rewrites its file by rename). */
export async function copyResolv(sys: SystemAdapter, hostResolv: string, hostPath: string): Promise<void> {
  const data = await sys.readFile(hostResolv).catch(() => undefined);
  if (data) await writeDeviceFile(sys, join(hostPath, 'etc/resolv.conf'), data, { mode: 0o644, symlink: 'replace' });
}

/** `chroot up`: the mounts, resolv.conf, then the services. Running it again does nothing more. */
export async function chrootUp(d: RuntimeDeps, hostPath: string, record: ChrootRecord, hostResolv: string): Promise<void> {
  await ensureMounts(d, hostPath, record.mounts);
  if (record.dnsCopy) await copyResolv(d.sys, hostResolv, hostPath);
  if (record.services.length) {
    const stopped = [];
    for (const s of record.services) if (!(await serviceRunning(d.sys, hostPath, s))) stopped.push(s);
    if (stopped.length) await startServices(d, hostPath);
  }
}

function busyError(hostPath: string, left: readonly MountEntry[], holders: readonly Holder[]): FatalError {
  const who = holders.length ? `; held by ${holders.map((h) => `pid ${h.pid} (${h.comm}): ${h.how}`).join('; ')} (stop it and apply again)` : '';
  return new FatalError(`cannot unmount everything below ${hostPath}: still mounted ${left.map((m) => m.mountPoint).join(', ')}${who}. Nothing was deleted`);
}

/**
 * `chroot down` (and the first half of a teardown): services stopped one by one (never the
 * shutdown runlevel), the chroot's remaining processes TERMed then KILLed, then every mount at
 * or below the chroot unmounted newest first (no lazy or forced unmount: they hide the holder).
 * Throws naming what is still mounted and who holds it.
 */
export async function chrootDown(d: RuntimeDeps, hostPath: string, services: readonly string[]): Promise<void> {
  const mounted = () => readMounts(d.sys).then((all) => mountsBelow(all, hostPath));
  if (services.length && (await mounted()).some((m) => m.mountPoint === mountPointOf(hostPath, '/run')))
    for (const s of [...services].reverse()) await stopService(d, hostPath, s);
  await stopProcesses(d, hostPath);
  let failures: string[] = [];
  for (let round = 0; round < 3; round++) {
    const left = await mounted();
    if (!left.length) return;
    failures = [];
    for (const m of [...left].reverse()) {
      const r = await d.sys.exec(['umount', m.mountPoint]);
      if (r.code !== 0) failures.push(`${m.mountPoint}: ${r.stderr.trim()}`);
    }
  }
  const left = await mounted();
  if (left.length) {
    d.log.warn('chroot: unmounting failed', { errors: failures.join('; ') });
    throw busyError(hostPath, left, await holdersBelow(d.sys, hostPath));
  }
}

/**
 * Deletes a directory tree without ever crossing into another filesystem: a mount the agent
 * did not see (a live /dev bind) is refused, never emptied.
 */
export async function removeTreeOneFs(dir: string): Promise<void> {
  const top = await lstat(dir).catch(() => undefined);
  if (!top) return;
  const walk = async (p: string): Promise<void> => {
    const st = await lstat(p);
    if (st.dev !== top.dev) throw new FatalError(`${p} is on another filesystem (a mount below the chroot?); nothing more is deleted`);
    if (!st.isDirectory()) return unlink(p);
    for (const n of await readdir(p)) await walk(join(p, n));
    await rmdir(p);
  };
  await walk(dir);
}

/** The whole teardown: down, a fresh look that nothing is mounted below any more, then the delete. */
export async function chrootTeardown(d: RuntimeDeps, hostPath: string, services: readonly string[]): Promise<void> {
  await chrootDown(d, hostPath, services);
  const left = mountsBelow(await readMounts(d.sys), hostPath);
  if (left.length) throw busyError(hostPath, left, await holdersBelow(d.sys, hostPath));
  await removeTreeOneFs(hostPath);
}
