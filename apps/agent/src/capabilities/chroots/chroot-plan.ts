import { type ChrootBoot, type ChrootSpec, type ChrootsSection, type ResolvedArtifact, chrootRepositories } from '@ibex/spec';
import type { StepSummary } from '../../engine/section-result.js';

/**
 * The pure half of the chroots capability: what the agent knows about a chroot (the record it
 * keeps in it), what observe found, the steps, and the texts it writes (hook blocks, the
 * enter-chroot script, passwd/group lines, resolv.conf). Nothing here reads the disk.
 */

/** A mount the agent makes in a chroot; `target` is the path inside it. */
export interface ChrootMount {
  kind: 'proc' | 'rbind' | 'tmpfs' | 'bind';
  /** Host path for binds (already resolved under --root); the fs name otherwise. */
  source: string;
  target: string;
  readOnly: boolean;
}

/** What `ibex-agent chroot up|down|enter` needs, kept in the chroot (on its disk: it survives a reboot). */
export interface ChrootRecord {
  version: 1;
  name: string;
  /** Device path of the chroot. */
  path: string;
  release: string;
  arch: string;
  mounts: ChrootMount[];
  services: string[];
  /** Packages the spec asked for (removed again when they leave the spec). */
  packages: string[];
  dnsCopy: boolean;
  boot: ChrootBoot;
}

/** The record's file, at the top of the chroot directory (`/.ibex-chroot.json` inside). */
export const RECORD_FILE = '.ibex-chroot.json';
/** Where an install is unpacked before it is renamed into place (beside the chroot, same filesystem). */
export const stagingOf = (hostPath: string) => `${hostPath}.ibex-installing`;

/** Filesystems without Unix owners and modes: a root filesystem cannot live there. */
export const NO_OWNERSHIP_FS = new Set(['vfat', 'msdos', 'exfat', 'fat', 'ntfs', 'ntfs3', 'fuseblk', 'hfsplus']);

export interface ServiceActual {
  exists: boolean;
  enabled: boolean;
  running: boolean;
}

export interface ChrootActual {
  /** Host path of the chroot (under --root). */
  hostPath: string;
  /** `ours`: it holds the agent's record; `foreign`: something else is there. */
  state: 'absent' | 'empty-dir' | 'ours' | 'foreign';
  stagingLeft: boolean;
  /** Filesystem type and mount point of the directory holding the chroot. */
  fsType?: string;
  diskMount?: string;
  record?: ChrootRecord;
  /** Mount points at or below hostPath, in /proc/self/mountinfo order (exact, unescaped). */
  mounts: string[];
  /** Files inside the chroot by their path inside it (null: missing). */
  files: Record<string, string | null>;
  /** Installed apk packages (null: no apk database). */
  packages: string[] | null;
  services: Record<string, ServiceActual>;
  hostResolv: string | null;
  /** Boot hook files (device paths) and what they hold; symlinks by their target. */
  hooks: Record<string, string | null>;
  /** Host paths of the extra bind sources, in spec order. */
  bindSources: string[];
}

export interface ChrootsActual {
  chroots: Record<string, ChrootActual>;
  /** How boot hooks and the enter-chroot script run this agent (binary, --root when not /). */
  agentCommand: AgentCommand;
}

export type InstallSource =
  | { kind: 'tarball'; artifact?: ResolvedArtifact; url?: string; path?: string; sha256: string }
  | { kind: 'apk-static'; url?: string; path?: string; sha256: string; keys: { name: string; pem: string }[] };

export type ChrootStep =
  | { action: 'refuse'; name: string; reason: string }
  | { action: 'remove-staging'; name: string; hostPath: string }
  | { action: 'install'; name: string; hostPath: string; source: InstallSource; arch: string; repositories: string[]; record: ChrootRecord }
  | { action: 'write-file'; name: string; hostPath: string; inside: string; content: string; mode: number }
  | { action: 'accounts'; name: string; hostPath: string; users: ChrootSpec['users']; groups: ChrootSpec['groups'] }
  | { action: 'record'; name: string; hostPath: string; record: ChrootRecord }
  | { action: 'mount'; name: string; hostPath: string; mount: ChrootMount }
  | { action: 'unmount'; name: string; hostPath: string; target: string }
  | { action: 'packages'; name: string; hostPath: string; add: string[]; del: string[] }
  | { action: 'services'; name: string; hostPath: string; enable: string[]; disable: string[]; start: boolean; stop: string[] }
  | { action: 'hook'; name: string; file: string; block: string | null }
  | { action: 'hook-file'; name: string; file: string; content: string | null; mode: number }
  | { action: 'hook-link'; name: string; file: string; target: string | null }
  | { action: 'teardown'; name: string; hostPath: string; services: string[] };

/** The mounts every chroot gets, then its extra binds. /run is a fresh tmpfs: OpenRC must not see stale state. */
export function chrootMounts(spec: ChrootSpec, bindSources: readonly string[]): ChrootMount[] {
  return [
    { kind: 'proc', source: 'proc', target: '/proc', readOnly: false },
    { kind: 'rbind', source: '/sys', target: '/sys', readOnly: false },
    { kind: 'rbind', source: '/dev', target: '/dev', readOnly: false },
    { kind: 'tmpfs', source: 'tmpfs', target: '/run', readOnly: false },
    ...spec.mounts.map((m, i) => ({ kind: 'bind' as const, source: bindSources[i]!, target: m.target ?? m.source, readOnly: m.readOnly })),
  ];
}

/** The host path a mount lands on. */
export const mountPointOf = (hostPath: string, target: string) => (target === '/' ? hostPath : `${hostPath}${target}`);

/** Whether `p` is `dir` or below it: exact path components, never a string prefix (/x/alpine vs /x/alpine-2). */
export const isAtOrBelow = (p: string, dir: string) => p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);

/** A word for sh, single-quoted. */
export const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const BEGIN = (name: string) => `# >>> ibex-chroot ${name} >>>`;
const END = (name: string) => `# <<< ibex-chroot ${name} <<<`;

/**
 * The file with this chroot's marked block set to `block` (or removed when null), everything
 * else in it kept as it was (Entware and amtm use the same scripts). A missing file starts as
 * `#!/bin/sh`. Returns null when the file was missing and stays without a block.
 */
export function withBlock(text: string | null, name: string, block: string | null): string | null {
  const lines = text === null ? [] : text.split('\n');
  if (text !== null && text.endsWith('\n')) lines.pop();
  const b = lines.indexOf(BEGIN(name));
  const e = b >= 0 ? lines.indexOf(END(name), b) : -1;
  const kept = b >= 0 && e >= 0 ? [...lines.slice(0, b), ...lines.slice(e + 1)] : lines;
  if (block === null) return text === null ? null : kept.length ? `${kept.join('\n')}\n` : '';
  const body = [BEGIN(name), ...block.replace(/\n$/, '').split('\n'), END(name)];
  const start = kept.length ? kept : ['#!/bin/sh'];
  // Put the block where it was, else at the end.
  const at = b >= 0 && e >= 0 ? b : start.length;
  return `${[...start.slice(0, at), ...body, ...start.slice(at)].join('\n')}\n`;
}

export function hasBlock(text: string | null, name: string): boolean {
  return text !== null && text.split('\n').includes(BEGIN(name));
}

/** How hooks and scripts run this agent: its program, and the flags that go after the command (--root). */
export interface AgentCommand {
  self: string[];
  flags: string[];
}

/** One command line of the agent for sh. */
const agentWords = (agent: AgentCommand, args: readonly string[]) => [...agent.self, ...args, ...agent.flags];
const agentLine = (agent: AgentCommand, args: readonly string[]) => agentWords(agent, args).map(shQuote).join(' ');

export interface HookPlan {
  /** Marked blocks in files shared with others. */
  blocks: { file: string; block: string }[];
  /** Whole files that are the agent's own. */
  files: { file: string; content: string; mode: number }[];
  links: { file: string; target: string }[];
}

/** The boot integration of a chroot: where start (`chroot up`) and stop (`chroot down`) go. */
export function bootHooks(name: string, path: string, boot: ChrootBoot, diskMount: string | undefined, agent: AgentCommand): HookPlan {
  const up = agentLine(agent, ['chroot', 'up', path]);
  const down = agentLine(agent, ['chroot', 'down', path]);
  switch (boot.kind) {
    case 'none':
      return { blocks: [], files: [], links: [] };
    case 'merlin': {
      const disk = boot.disk ?? diskMount ?? '/';
      const s = `${boot.jffs}/scripts`;
      // post-mount and unmount get the mount point as $1; services-stop runs before a reboot.
      return {
        blocks: [
          { file: `${s}/post-mount`, block: `if [ "$1" = ${shQuote(disk)} ]; then ${up}; fi` },
          { file: `${s}/unmount`, block: `if [ "$1" = ${shQuote(disk)} ]; then ${down}; fi` },
          { file: `${s}/services-stop`, block: down },
        ],
        files: [],
        links: [],
      };
    }
    case 'openrc':
      return {
        blocks: [],
        files: [
          { file: `/etc/local.d/ibex-chroot-${name}.start`, content: `#!/bin/sh\n# Written by ibex-agent: starts the chroot ${name} at boot.\nexec ${up}\n`, mode: 0o755 },
          { file: `/etc/local.d/ibex-chroot-${name}.stop`, content: `#!/bin/sh\n# Written by ibex-agent: stops the chroot ${name} before shutdown.\nexec ${down}\n`, mode: 0o755 },
        ],
        links: [],
      };
    case 'systemd': {
      const unit = `ibex-chroot-${name}.service`;
      // systemd splits ExecStart on spaces unless quoted: every word is double-quoted.
      const sd = (args: string[]) => agentWords(agent, args).map((w) => `"${w.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(' ');
      return {
        blocks: [],
        files: [
          {
            file: `/etc/systemd/system/${unit}`,
            content: `# Written by ibex-agent: the chroot ${name} at ${path}.\n[Unit]\nDescription=Alpine chroot ${name} (Ibex)\nRequiresMountsFor=${path.replace(/ /g, '\\x20')}\nAfter=local-fs.target network-online.target\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=${sd(['chroot', 'up', path])}\nExecStop=${sd(['chroot', 'down', path])}\n\n[Install]\nWantedBy=multi-user.target\n`,
            mode: 0o644,
          },
        ],
        links: [{ file: `/etc/systemd/system/multi-user.target.wants/${unit}`, target: `/etc/systemd/system/${unit}` }],
      };
    }
  }
}

/** Every file a boot integration may touch (to read them, and to clean up a kind no longer used). */
export function hookFiles(name: string, boot: ChrootBoot): string[] {
  const h = bootHooks(name, '/', boot, '/', { self: [], flags: [] });
  return [...h.blocks.map((b) => b.file), ...h.files.map((f) => f.file), ...h.links.map((l) => l.file)];
}

/** The script beside the chroot's files for people at the console (alpine-chroot-install's enter-chroot). */
export function enterScript(name: string, path: string, agent: AgentCommand): string {
  return `#!/bin/sh\n# Written by ibex-agent: enters the chroot ${name} (mounting what is missing).\n# Usage: enter-chroot [COMMAND [ARGS...]]\nexec ${agentLine(agent, ['chroot', 'enter', path])} -- "$@"\n`;
}

export function renderResolv(dns: ChrootSpec['dns'], hostResolv: string | null): string | null {
  if (dns === 'copy') return hostResolv;
  return `# Written by ibex-agent\n${dns.search.length ? `search ${dns.search.join(' ')}\n` : ''}${dns.nameservers.map((n) => `nameserver ${n}\n`).join('')}`;
}

/** passwd and group with the spec's accounts at the spec's ids (a line of the same name is replaced, others kept). */
export function mergeAccounts(passwd: string, group: string, users: ChrootSpec['users'], groups: ChrootSpec['groups']): { passwd: string; group: string } {
  const merge = (text: string, entries: { name: string; line: string }[]) => {
    const lines = text.split('\n').filter((l, i, all) => l !== '' || i < all.length - 1);
    for (const e of entries) {
      const i = lines.findIndex((l) => l.split(':')[0] === e.name);
      if (i >= 0) lines[i] = e.line;
      else lines.push(e.line);
    }
    return lines.length ? `${lines.join('\n')}\n` : '';
  };
  return {
    passwd: merge(passwd, users.map((u) => ({ name: u.name, line: `${u.name}:x:${u.uid}:${u.gid}:${u.name}:${u.home ?? (u.uid === 0 ? '/root' : `/home/${u.name}`)}:${u.shell}` }))),
    group: merge(group, groups.map((g) => ({ name: g.name, line: `${g.name}:x:${g.gid}:${g.members.join(',')}` }))),
  };
}

/** An apk name without its version constraint. */
export const packageName = (p: string) => p.split(/[<>=~]/)[0]!;

/** What to install from, or why it cannot be: an artifact reference only a controller can resolve. */
function sourceOf(spec: ChrootSpec): InstallSource | string {
  const s = spec.source!;
  if ('apkStatic' in s) return { kind: 'apk-static', ...s.apkStatic, keys: s.keys };
  if ('artifact' in s) {
    if (typeof s.artifact === 'string')
      return `the source names artifact ${s.artifact}, which only the controller resolves (to its id and sha256) when it stores the desired state; apply it through the controller, or give a url or path with the sha256`;
    return { kind: 'tarball', artifact: s.artifact, sha256: s.artifact.sha256 };
  }
  return { kind: 'tarball', ...s };
}

function recordOf(name: string, spec: ChrootSpec, bindSources: readonly string[]): ChrootRecord {
  return {
    version: 1,
    name,
    path: spec.path,
    release: spec.release,
    arch: spec.arch,
    mounts: chrootMounts(spec, bindSources),
    services: spec.services,
    packages: spec.packages,
    dnsCopy: spec.dns === 'copy',
    boot: spec.boot,
  };
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function planHooks(name: string, spec: ChrootSpec, a: ChrootActual, agent: AgentCommand, wanted: boolean): ChrootStep[] {
  const steps: ChrootStep[] = [];
  const want = wanted ? bootHooks(name, spec.path, spec.boot, a.diskMount, agent) : { blocks: [], files: [], links: [] };
  const kinds = [spec.boot, ...(a.record && !sameJson(a.record.boot, spec.boot) ? [a.record.boot] : [])];
  const touched = new Set<string>();
  for (const b of want.blocks) {
    touched.add(b.file);
    if (withBlock(a.hooks[b.file] ?? null, name, b.block) !== (a.hooks[b.file] ?? null)) steps.push({ action: 'hook', name, file: b.file, block: b.block });
  }
  for (const f of want.files) {
    touched.add(f.file);
    if (a.hooks[f.file] !== f.content) steps.push({ action: 'hook-file', name, file: f.file, content: f.content, mode: f.mode });
  }
  for (const l of want.links) {
    touched.add(l.file);
    if (a.hooks[l.file] !== `-> ${l.target}`) steps.push({ action: 'hook-link', name, file: l.file, target: l.target });
  }
  // What a boot kind no longer wanted (or a chroot going away) left behind.
  for (const kind of kinds) {
    const old = bootHooks(name, spec.path, kind, a.diskMount, agent);
    for (const b of old.blocks) if (!touched.has(b.file) && hasBlock(a.hooks[b.file] ?? null, name)) (touched.add(b.file), steps.push({ action: 'hook', name, file: b.file, block: null }));
    for (const f of old.files) if (!touched.has(f.file) && a.hooks[f.file] != null) (touched.add(f.file), steps.push({ action: 'hook-file', name, file: f.file, content: null, mode: 0 }));
    for (const l of old.links) if (!touched.has(l.file) && a.hooks[l.file] != null) (touched.add(l.file), steps.push({ action: 'hook-link', name, file: l.file, target: null }));
  }
  return steps;
}

function planPresent(name: string, spec: ChrootSpec, a: ChrootActual, agent: AgentCommand): ChrootStep[] {
  const { hostPath } = a;
  if (a.state === 'foreign') return [{ action: 'refuse', name, reason: `${spec.path} exists and was not installed by Ibex (no ${RECORD_FILE}); move it away or choose another path` }];
  if (a.fsType && NO_OWNERSHIP_FS.has(a.fsType))
    return [{ action: 'refuse', name, reason: `${spec.path} is on a ${a.fsType} filesystem (${a.diskMount ?? '?'}), which has no Unix owners or permissions: a root filesystem cannot work there; format the disk as ext4 (or put the chroot on another disk)` }];
  const steps: ChrootStep[] = [];
  if (a.stagingLeft) steps.push({ action: 'remove-staging', name, hostPath });
  const fresh = a.state !== 'ours';
  const record = recordOf(name, spec, a.bindSources);
  if (fresh) {
    const source = sourceOf(spec);
    if (typeof source === 'string') return [{ action: 'refuse', name, reason: `chroot ${name}: ${source}` }];
    steps.push({ action: 'install', name, hostPath, source, arch: spec.arch, repositories: chrootRepositories(spec), record });
  }
  const file = (inside: string, content: string | null, mode = 0o644) => {
    if (content !== null && (fresh || a.files[inside] !== content)) steps.push({ action: 'write-file', name, hostPath, inside, content, mode });
  };
  if (spec.hostname) file('/etc/hostname', `${spec.hostname}\n`);
  file('/etc/resolv.conf', renderResolv(spec.dns, a.hostResolv));
  file('/etc/apk/repositories', `${chrootRepositories(spec).join('\n')}\n`);
  if (spec.users.length || spec.groups.length) {
    const merged = mergeAccounts(a.files['/etc/passwd'] ?? '', a.files['/etc/group'] ?? '', spec.users, spec.groups);
    if (fresh || merged.passwd !== a.files['/etc/passwd'] || merged.group !== a.files['/etc/group']) steps.push({ action: 'accounts', name, hostPath, users: spec.users, groups: spec.groups });
  }
  if (!fresh && !sameJson(a.record, record)) steps.push({ action: 'record', name, hostPath, record });
  const mounts = record.mounts;
  const wantedPoints = new Set(mounts.map((m) => mountPointOf(hostPath, m.target)));
  // Extra binds the spec no longer has (newest first).
  for (const old of [...(a.record?.mounts ?? [])].reverse()) {
    const point = mountPointOf(hostPath, old.target);
    if (old.kind === 'bind' && !wantedPoints.has(point) && a.mounts.includes(point)) steps.push({ action: 'unmount', name, hostPath, target: point });
  }
  for (const m of mounts) if (fresh || !a.mounts.includes(mountPointOf(hostPath, m.target))) steps.push({ action: 'mount', name, hostPath, mount: m });
  const installed = new Set(a.packages ?? []);
  const add = spec.packages.filter((p) => fresh || !installed.has(packageName(p)));
  const wantedNames = new Set(spec.packages.map(packageName));
  const del = (a.record?.packages ?? []).map(packageName).filter((p) => !wantedNames.has(p) && installed.has(p));
  if (add.length || del.length) steps.push({ action: 'packages', name, hostPath, add, del });
  const known = a.record?.services ?? [];
  const enable = spec.services.filter((s) => fresh || !a.services[s]?.enabled);
  const disable = known.filter((s) => !spec.services.includes(s) && a.services[s]?.enabled);
  const stop = known.filter((s) => !spec.services.includes(s) && a.services[s]?.running);
  const start = spec.services.some((s) => fresh || !a.services[s]?.running);
  if (enable.length || disable.length || stop.length || start) steps.push({ action: 'services', name, hostPath, enable, disable, start, stop });
  const enter = enterScript(name, spec.path, agent);
  if (fresh || a.files['enter-chroot'] !== enter) steps.push({ action: 'write-file', name, hostPath, inside: 'enter-chroot', content: enter, mode: 0o755 });
  steps.push(...planHooks(name, spec, a, agent, true));
  return steps;
}

function planAbsent(name: string, spec: ChrootSpec, a: ChrootActual, agent: AgentCommand): ChrootStep[] {
  if (a.state === 'foreign') return [{ action: 'refuse', name, reason: `${spec.path} was not installed by Ibex (no ${RECORD_FILE}): the agent does not delete it; remove it by hand if it should go` }];
  const steps = planHooks(name, spec, a, agent, false);
  if (a.stagingLeft) steps.push({ action: 'remove-staging', name, hostPath: a.hostPath });
  if (a.state !== 'absent' || a.mounts.length) steps.push({ action: 'teardown', name, hostPath: a.hostPath, services: a.record?.services ?? [] });
  return steps;
}

/** The steps that make the chroots as the spec says (empty: in sync). */
export function planChroots(spec: ChrootsSection, actual: ChrootsActual): ChrootStep[] {
  const steps: ChrootStep[] = [];
  for (const [name, c] of Object.entries(spec)) {
    const a = actual.chroots[name];
    if (!a) continue;
    steps.push(...(c.ensure === 'absent' ? planAbsent(name, c, a, actual.agentCommand) : planPresent(name, c, a, actual.agentCommand)));
  }
  return steps;
}

const describeSource = (s: InstallSource) => (s.kind === 'apk-static' ? `apk.static (${s.url ?? s.path})` : (s.artifact ? `artifact ${s.artifact.name}@${s.artifact.version}` : (s.url ?? s.path)!));

export function summarizeChrootStep(step: ChrootStep): StepSummary {
  const text = ((): string => {
    switch (step.action) {
      case 'refuse':
        return `refuse chroot ${step.name}: ${step.reason}`;
      case 'remove-staging':
        return `chroot ${step.name}: remove the unfinished install ${stagingOf(step.hostPath)}`;
      case 'install':
        return `chroot ${step.name}: install Alpine (${step.arch}) from ${describeSource(step.source)}, sha256 ${step.source.sha256.slice(0, 12)}...`;
      case 'write-file':
        return `chroot ${step.name}: write ${step.inside}`;
      case 'accounts':
        return `chroot ${step.name}: set accounts ${[...step.users.map((u) => `${u.name} (uid ${u.uid})`), ...step.groups.map((g) => `group ${g.name} (gid ${g.gid})`)].join(', ')}`;
      case 'record':
        return `chroot ${step.name}: record its mounts and services (${RECORD_FILE})`;
      case 'mount':
        return `chroot ${step.name}: mount ${step.mount.kind === 'bind' || step.mount.kind === 'rbind' ? `${step.mount.source} on ` : `${step.mount.kind} on `}${step.mount.target}${step.mount.readOnly ? ' (read-only)' : ''}`;
      case 'unmount':
        return `chroot ${step.name}: unmount ${step.target}`;
      case 'packages':
        return `chroot ${step.name}: apk${step.add.length ? ` add ${step.add.join(' ')}` : ''}${step.del.length ? ` del ${step.del.join(' ')}` : ''}`;
      case 'services':
        return `chroot ${step.name}: OpenRC${step.enable.length ? ` enable ${step.enable.join(' ')};` : ''}${step.disable.length ? ` disable ${step.disable.join(' ')};` : ''}${step.stop.length ? ` stop ${step.stop.join(' ')};` : ''}${step.start ? ' start the default runlevel' : ''}`;
      case 'hook':
        return `chroot ${step.name}: ${step.block === null ? 'remove the ibex block from' : 'set the ibex block in'} ${step.file}`;
      case 'hook-file':
        return `chroot ${step.name}: ${step.content === null ? 'remove' : 'write'} ${step.file}`;
      case 'hook-link':
        return `chroot ${step.name}: ${step.target === null ? 'remove' : 'link'} ${step.file}${step.target ? ` -> ${step.target}` : ''}`;
      case 'teardown':
        return `chroot ${step.name}: stop its services and processes, unmount everything below ${step.hostPath}, delete it`;
    }
  })();
  return { action: step.action, chroot: step.name, text };
}
