import type { OpenwrtContainer } from '@ibex/spec';
import { errorMessage } from '../../common/errors.js';
import type { CapabilityContext } from '../../engine/capability.js';
import { resolveUnderRoot } from '../../system/root-path.js';
import type { ExecResult, SystemAdapter } from '../../system/system-adapter.js';

/**
 * The OpenWrt container as the agent reaches it, whatever runs it: its network namespace (to
 * move interfaces into and to run `ip`/`iw` there) and a way to run OpenWrt's own programs
 * (`uci`, the init scripts) in all its namespaces and its filesystem. Re-resolved at every
 * apply: a restarted container has a new pid and a new namespace.
 */
export interface RunningContainer {
  running: true;
  /** For messages: "docker container openwrt (pid 4242)". */
  label: string;
  /** The namespace file in the agent's mount namespace. */
  nsPath: string;
  /** The namespace, "net:[4026532241]". */
  netns: string;
  /**
   * This instance of the container: its namespace and, for a process, its pid and start time
   * ("net:[4026532241]@4242.81234"). Tells a restarted container from the one interfaces were
   * moved into: the kernel reuses a freed namespace's inode number, so the namespace alone does not.
   */
  nsId: string;
  /** Where `ip link set ... netns` and `iw phy ... set netns` send things. */
  target: { pid: number } | { path: string };
  /** argv prefix that runs a program inside the container; `env` goes with it (nsenter passes the agent's environment on). */
  exec: { prefix: string[]; env?: Record<string, string> };
}

/** Definitely not running (no such container, stopped, its process gone): its host side can be cleaned up. */
export interface AbsentContainer {
  running: false;
  certain: true;
  label: string;
  reason: string;
}

/** Could not tell (the runtime did not answer): nothing may be cleaned up on a guess. */
export interface UnknownContainer {
  running: false;
  certain: false;
  label: string;
  reason: string;
}

export type ContainerState = RunningContainer | AbsentContainer | UnknownContainer;

/** OpenWrt's own PATH, for the programs run inside through nsenter (the init scripts call plain names). */
export const OPENWRT_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

const NS_ID_RE = /^net:\[\d+\]$/;

/** "net:[inode]" of a namespace file: /proc/PID/ns/net (a magic link), a bind-mounted nsfs file, or a symlink to either. */
export async function netnsIdOf(sys: SystemAdapter, path: string): Promise<string | undefined> {
  let p = path;
  for (let depth = 0; depth < 8; depth++) {
    const st = await sys.lstat(p).catch(() => undefined);
    if (!st) return undefined;
    if (!st.isSymbolicLink()) return `net:[${st.ino}]`;
    const target = await sys.readlink(p).catch(() => undefined);
    if (target === undefined) return undefined;
    if (NS_ID_RE.test(target)) {
      // /proc/PID/ns/net of a process that has exited still reads back, but cannot be entered.
      return (await sys.lstat(p.replace(/\/ns\/net$/, ''))) ? target : undefined;
    }
    p = target.startsWith('/') ? target : `${p.replace(/\/[^/]*$/, '')}/${target}`;
  }
  return undefined;
}

/** A process's start time (clock ticks after boot, field 22 of /proc/PID/stat): with the pid, it names one process. */
async function startTimeOf(sys: SystemAdapter, pid: number): Promise<string | undefined> {
  const stat = await sys.readFile(`/proc/${pid}/stat`).then(
    (b) => b.toString('utf8'),
    () => undefined,
  );
  // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

async function byPid(sys: SystemAdapter, pid: number, label: string): Promise<RunningContainer | AbsentContainer> {
  const nsPath = `/proc/${pid}/ns/net`;
  const netns = await netnsIdOf(sys, nsPath);
  const started = await startTimeOf(sys, pid);
  if (!netns || !started) return { running: false, certain: true, label, reason: `${label}: process ${pid} does not exist` };
  return {
    running: true,
    label: `${label} (pid ${pid})`,
    nsPath,
    netns,
    nsId: `${netns}@${pid}.${started}`,
    target: { pid },
    // Every namespace of the container and its root directory: OpenWrt's /sbin/uci and /etc/config.
    exec: { prefix: ['nsenter', '-t', String(pid), '-m', '-u', '-i', '-n', '-p', '-r', '-w', '--'], env: { PATH: OPENWRT_PATH, LANG: 'C' } },
  };
}

/** The container runtime's CLI answer for one container: running and its pid. */
async function inspect(ctx: CapabilityContext, runtime: 'docker' | 'podman', name: string): Promise<ContainerState> {
  const label = `${runtime} container ${name}`;
  let r: ExecResult;
  try {
    r = await ctx.sys.exec([runtime, 'inspect', '--type', 'container', '--format', '{{.State.Running}} {{.State.Pid}}', name], { signal: ctx.signal, timeoutMs: 30_000 });
  } catch (err) {
    return { running: false, certain: false, label, reason: `${runtime} could not run (${errorMessage(err)}): install it or use runtime "process" with the container's pid` };
  }
  const out = `${r.stderr}\n${r.stdout}`.trim();
  if (r.code !== 0) {
    if (/no such (container|object)/i.test(out)) return { running: false, certain: true, label, reason: `${label} does not exist (${runtime} inspect: ${out.split('\n')[0]})` };
    return { running: false, certain: false, label, reason: `${runtime} inspect ${name} failed (exit ${r.code ?? r.signal}): ${out.split('\n').slice(-3).join(' ')}` };
  }
  const m = /^(true|false) (\d+)$/.exec(r.stdout.trim());
  if (!m) return { running: false, certain: false, label, reason: `${runtime} inspect ${name} printed something unexpected: ${JSON.stringify(r.stdout.slice(0, 200))}` };
  if (m[1] !== 'true' || m[2] === '0') return { running: false, certain: true, label, reason: `${label} is not running` };
  const c = await byPid(ctx.sys, Number(m[2]), label);
  if (!c.running) return c;
  return { ...c, exec: { prefix: [runtime, 'exec', '-i', name] } };
}

export async function resolveContainer(ctx: CapabilityContext, spec: OpenwrtContainer): Promise<ContainerState> {
  switch (spec.runtime) {
    case 'docker':
    case 'podman':
      return inspect(ctx, spec.runtime, spec.name);
    case 'process': {
      if (spec.pid !== undefined) return byPid(ctx.sys, spec.pid, 'process');
      const label = `the process in ${spec.pidFile}`;
      const host = (await resolveUnderRoot(ctx.sys, ctx.root, spec.pidFile!)).host;
      const text = await ctx.sys.readFile(host).then(
        (b) => b.toString('utf8').trim(),
        (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)),
      );
      if (text === undefined) return { running: false, certain: true, label, reason: `pid file ${spec.pidFile} does not exist` };
      if (!/^\d+$/.test(text) || Number(text) < 2) return { running: false, certain: false, label, reason: `pid file ${spec.pidFile} does not hold a process id (${JSON.stringify(text.slice(0, 40))})` };
      return byPid(ctx.sys, Number(text), 'process');
    }
    case 'netns': {
      const label = `network namespace ${spec.path}`;
      const nsId = await netnsIdOf(ctx.sys, spec.path);
      if (!nsId) return { running: false, certain: true, label, reason: `${spec.path} does not exist (or its process has exited)` };
      const rootfs = spec.rootfs === undefined ? undefined : (await resolveUnderRoot(ctx.sys, ctx.root, spec.rootfs)).host;
      return {
        running: true,
        label,
        nsPath: spec.path,
        netns: nsId,
        nsId,
        target: { path: spec.path },
        exec: { prefix: ['nsenter', `--net=${spec.path}`, ...(rootfs ? [`--root=${rootfs}`, `--wd=${rootfs}`] : []), '--'], env: { PATH: OPENWRT_PATH, LANG: 'C' } },
      };
    }
  }
}

/** argv that runs `argv` (a host program such as ip or iw) in the container's network namespace only. */
export const inNetns = (c: Pick<RunningContainer, 'nsPath'>, argv: readonly string[]): string[] => ['nsenter', `--net=${c.nsPath}`, '--', ...argv];

/** The `netns` argument of `ip link set` for the container: its pid, or the namespace file. */
export const ipNetnsArg = (c: Pick<RunningContainer, 'target'>): string => ('pid' in c.target ? String(c.target.pid) : c.target.path);

/** `iw phy PHY set netns ...`: by pid, or `name PATH` (iw opens an absolute path as the namespace). */
export const iwSetNetns = (c: Pick<RunningContainer, 'target'>, phy: string): string[] =>
  'pid' in c.target ? ['iw', 'phy', phy, 'set', 'netns', String(c.target.pid)] : ['iw', 'phy', phy, 'set', 'netns', 'name', c.target.path];
