import { rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { type NetworkSection, networkSectionSchema } from '@ibex/spec';
import { FatalError, errorMessage } from '../../common/errors.js';
import { failpoint } from '../../common/failpoints.js';
import type { Capability, CapabilityContext } from '../../engine/capability.js';
import { RevertSteps } from '../../engine/revert-steps.js';
import { writeDeviceFile as writeHostFile } from '../../system/device-file-writer.js';
import { resolveUnderRoot } from '../../system/root-path.js';
import { type LiveLink, type LiveRoute, type NetworkActual, type NetworkPaths, type NetworkStep, ifupdownArgs, planNetwork, summarizeNetworkStep } from './network-plan.js';
import { waitForLeases } from './dhcp-lease.js';
import { type ParsedInterfaces, ifaceNames, parseInterfaces } from './parse.js';
import { DNS_HOOK, DNS_STAMP_DIR, ETC_NETWORK, INTERFACES, INTERFACES_D, RESOLV_CONF, managedBlockOf, renderNetwork } from './render.js';

/** What revert needs: the old bytes of every file the steps touch, and what was up and how links were named. */
export interface NetworkBackup {
  files: Array<{ path: string; content?: string; mode?: number }>;
  /** Interfaces the apply brings down with the old config (revert brings them up again with it). */
  down: string[];
  /** Interfaces the apply brings up with the new config (revert brings them down). */
  up: string[];
  /** Link names before the apply, by the spec's final name (to undo the new config's renames). */
  namesBefore: Record<string, string>;
}

async function hostPath(ctx: CapabilityContext, devicePath: string): Promise<string> {
  return (await resolveUnderRoot(ctx.sys, ctx.root, devicePath)).host;
}

function pathsOf(ctx: CapabilityContext): NetworkPaths {
  const host = (p: string) => join(ctx.root, p);
  return {
    interfaces: host(INTERFACES),
    interfacesD: host(INTERFACES_D),
    stateFile: host('/run/ifstate'),
    staging: join(ctx.backupDir, 'staged'),
    host,
  };
}

/**
 * The directory `source` lines name. ifupdown-ng and BusyBox read `source` paths as they are, in
 * the mount namespace they run in (the agent's). With --root / that is the device path. Under
 * another root it is the device path only when /etc/network here IS the root's (the tests' netns
 * mapping: `ip netns exec` bind-mounts /etc/netns/NS/network over /etc/network); otherwise the
 * host path, or the tools would read the host's files.
 */
async function sourceDirOf(ctx: CapabilityContext): Promise<string> {
  if (ctx.root === '/' || ctx.root === '') return INTERFACES_D;
  const here = await ctx.sys.lstat(ETC_NETWORK).catch(() => undefined);
  const there = await ctx.sys.lstat(await hostPath(ctx, ETC_NETWORK)).catch(() => undefined);
  const same = !!here && !!there && here.isDirectory() && there.isDirectory() && here.dev === there.dev && here.ino === there.ino;
  return same ? INTERFACES_D : pathsOf(ctx).interfacesD;
}

/** Runs a program (argv, no shell); a non-zero exit becomes an error with its output. */
async function run(ctx: CapabilityContext, argv: string[], what: string): Promise<string> {
  ctx.log.debug('run', { argv: argv.join(' ') });
  const r = await ctx.sys.exec(argv as [string, ...string[]], { signal: ctx.signal, timeoutMs: 120_000 });
  if (r.code !== 0) {
    const out = `${r.stderr}\n${r.stdout}`.trim().split('\n').slice(-12).join('\n');
    throw new FatalError(`${what} failed (${argv.join(' ')} exited ${r.code ?? r.signal}): ${out}`);
  }
  return r.stdout;
}

async function readIfFile(ctx: CapabilityContext, devicePath: string): Promise<{ content: string; mode: number } | undefined> {
  const host = await hostPath(ctx, devicePath);
  const st = await ctx.sys.lstat(host);
  if (!st?.isFile()) return undefined;
  return { content: (await ctx.sys.readFile(host)).toString('utf8'), mode: st.mode & 0o7777 };
}

/** A path named in a `source` line, as a device path (ours are written as host paths under --root). */
function toDevicePath(ctx: CapabilityContext, p: string): string {
  if (ctx.root !== '/' && p.startsWith(ctx.root.replace(/\/$/, '') + '/')) return p.slice(ctx.root.replace(/\/$/, '').length);
  return p;
}

/** The main file and every file it sources (literal, glob `dir/*`, or source-directory), parsed. */
async function readCurrentConfig(ctx: CapabilityContext, main: string | undefined): Promise<ParsedInterfaces[]> {
  if (main === undefined) return [];
  const first = parseInterfaces(main);
  const out = [first];
  const seen = new Set<string>([INTERFACES]);
  const queue = [...first.items];
  while (queue.length) {
    const it = queue.shift()!;
    if (it.kind !== 'source') continue;
    const dev = toDevicePath(ctx, it.path);
    let files: string[];
    if (it.keyword === 'source-directory' || dev.endsWith('/*')) {
      const dir = dev.replace(/\/\*$/, '');
      files = (await ctx.sys.readdir(await hostPath(ctx, dir))).filter((n) => !n.startsWith('.')).sort().map((n) => posix.join(dir, n));
    } else files = [dev];
    for (const f of files) {
      if (seen.has(f)) continue;
      seen.add(f);
      const got = await readIfFile(ctx, f);
      if (!got) continue;
      const p = parseInterfaces(got.content);
      out.push(p);
      queue.push(...p.items);
    }
  }
  return out;
}

interface IpAddrJson {
  ifname: string;
  address?: string;
  flags?: string[];
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

async function observeLinks(ctx: CapabilityContext): Promise<LiveLink[]> {
  const raw = JSON.parse((await run(ctx, ['ip', '-j', 'addr', 'show'], 'listing addresses')) || '[]') as IpAddrJson[];
  return raw.map((l) => ({
    name: l.ifname,
    mac: l.address,
    up: (l.flags ?? []).includes('UP'),
    addresses: (l.addr_info ?? []).filter((a) => a.family === 'inet' || a.family === 'inet6').map((a) => `${a.local}/${a.prefixlen}`),
  }));
}

async function observeRoutes(ctx: CapabilityContext): Promise<LiveRoute[]> {
  const out: LiveRoute[] = [];
  for (const fam of ['-4', '-6']) {
    const raw = JSON.parse((await run(ctx, ['ip', '-j', fam, 'route', 'show'], 'listing routes')) || '[]') as Array<{ dst: string; gateway?: string; dev?: string; metric?: number }>;
    out.push(...raw.map((r) => ({ dst: r.dst, gateway: r.gateway, dev: r.dev, metric: r.metric })));
  }
  return out;
}

async function hasBusybox(ctx: CapabilityContext): Promise<boolean> {
  try {
    const r = await ctx.sys.exec(['busybox', '--list']);
    return r.code === 0 && r.stdout.split('\n').includes('ifup');
  } catch {
    return false;
  }
}

async function linkExists(ctx: CapabilityContext, name: string): Promise<boolean> {
  return (await ctx.sys.exec(['ip', 'link', 'show', 'dev', name])).code === 0;
}

/** Renames `from` to `to` when `from` exists and `to` does not (the link must be down). */
async function renameLink(ctx: CapabilityContext, from: string, to: string): Promise<void> {
  if (from === to || !(await linkExists(ctx, from)) || (await linkExists(ctx, to))) return;
  await run(ctx, ['ip', 'link', 'set', 'dev', from, 'down'], `bringing ${from} down`);
  await run(ctx, ['ip', 'link', 'set', 'dev', from, 'name', to], `renaming ${from} back to ${to}`);
}

/** The DNS hook's stamps of the spec's interfaces that have DNS (regular files only). */
async function readDnsStamps(ctx: CapabilityContext, spec: NetworkSection): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const i of spec.interfaces) if (i.dns?.servers.length || i.dns?.search.length) out[i.name] = (await readIfFile(ctx, posix.join(DNS_STAMP_DIR, i.name)))?.content;
  return out;
}

/** Creates the missing parent directories of a device path; returns its host path. */
async function makeParents(ctx: CapabilityContext, devicePath: string): Promise<string> {
  const r = await resolveUnderRoot(ctx.sys, ctx.root, devicePath);
  for (const dir of r.missingParents)
    await ctx.sys.mkdir(dir, 0o755).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  return r.host;
}

/** ifupdown-ng cannot create its state file (and locks) in a missing directory: a scratch root may have no /run yet. */
async function ensureStateDir(ctx: CapabilityContext): Promise<void> {
  await makeParents(ctx, '/run/ifstate');
}

async function writeDeviceFile(ctx: CapabilityContext, devicePath: string, content: string, mode: number): Promise<void> {
  // A bind-mounted resolv.conf is written in place; a symlink is refused (the backup refuses it before any step).
  await writeHostFile(ctx.sys, await makeParents(ctx, devicePath), Buffer.from(content), { mode, symlink: 'refuse', who: 'the network section' });
}

export const networkCapability: Capability<NetworkSection, NetworkActual, NetworkStep, NetworkBackup> = {
  section: 'network',
  schema: networkSectionSchema,

  confirmation(spec) {
    return { timeoutMs: spec.confirmTimeoutSec * 1000 };
  },

  async observe(ctx, spec) {
    const paths = { ...pathsOf(ctx), interfacesD: await sourceDirOf(ctx) };
    const mainFile = await readIfFile(ctx, INTERFACES);
    const dirHost = await hostPath(ctx, INTERFACES_D);
    const interfacesD: string[] = [];
    for (const n of await ctx.sys.readdir(dirHost)) if ((await ctx.sys.lstat(join(dirHost, n)))?.isFile()) interfacesD.push(n);
    const existing = { main: mainFile?.content, interfacesD: interfacesD.sort() };
    // Every path the plan may write or remove: the rendering, and what the last apply managed.
    const candidates = new Set(renderNetwork(spec, existing, { sourceDir: paths.interfacesD }).map((f) => f.path));
    const prev = managedBlockOf(mainFile?.content);
    for (const s of prev?.sources ?? []) candidates.add(posix.join(INTERFACES_D, posix.basename(s)));
    for (const h of prev?.hooks ?? []) candidates.add(h);
    const files: NetworkActual['files'] = {};
    for (const p of [...candidates].sort()) files[p] = p === INTERFACES ? mainFile : await readIfFile(ctx, p);
    const rc = await ctx.sys.lstat(await hostPath(ctx, RESOLV_CONF));
    const resolvConf: NetworkActual['resolvConf'] = !rc ? { kind: 'absent' } : rc.isFile() ? { kind: 'file', content: (await ctx.sys.readFile(await hostPath(ctx, RESOLV_CONF))).toString('utf8') } : { kind: 'unreadable' };
    return {
      paths,
      existing,
      files,
      resolvConf,
      dnsStamps: await readDnsStamps(ctx, spec),
      current: await readCurrentConfig(ctx, mainFile?.content),
      links: await observeLinks(ctx),
      routes: await observeRoutes(ctx),
      busybox: await hasBusybox(ctx),
    };
  },

  plan: planNetwork,
  summarize: summarizeNetworkStep,

  executors: {
    async refuse(step) {
      throw new FatalError(step.reason);
    },

    async validate(step, ctx) {
      // Where the plan's commands look (the plan was made before this change had its own backup directory).
      const staging = step.staging;
      const stagedD = join(staging, 'interfaces.d');
      await ctx.sys.mkdir(staging, 0o700).catch(() => {});
      await ctx.sys.mkdir(stagedD, 0o700).catch(() => {});
      // The hand-written files the main file keeps sourcing are read from where they are.
      const rendered = renderNetwork(step.spec, step.existing, { sourceDir: stagedD, keptSourceDir: await sourceDirOf(ctx), resolvConf: pathsOf(ctx).host(RESOLV_CONF), dnsStampDir: pathsOf(ctx).host(DNS_STAMP_DIR) });
      for (const f of rendered) {
        const to = f.path === INTERFACES ? join(staging, 'interfaces') : f.path.startsWith(`${INTERFACES_D}/`) ? join(stagedD, posix.basename(f.path)) : undefined;
        if (to) await writeHostFile(ctx.sys, to, Buffer.from(f.content), { mode: 0o600, symlink: 'refuse' });
      }
      try {
        for (const cmd of step.commands) await run(ctx, cmd, `validating the new network configuration (${cmd[0] === 'busybox' ? 'BusyBox ifup' : 'ifupdown-ng'})`);
      } finally {
        // Only the dry runs read the staged copy; it is the agent's own data, not the device's.
        await rm(staging, { recursive: true, force: true });
      }
    },

    async ifdown(step, ctx) {
      const paths = pathsOf(ctx);
      await ensureStateDir(ctx);
      if (step.interfaces.length) await run(ctx, ifupdownArgs(paths, 'ifdown', step.interfaces, ['-f']), `bringing down ${step.interfaces.join(', ')} with the current configuration`);
      for (const r of step.undoRenames) await renameLink(ctx, r.to, r.from);
    },

    async write(step, ctx) {
      await writeDeviceFile(ctx, step.path, step.content, step.mode);
    },

    async remove(step, ctx) {
      await ctx.sys.unlink(await hostPath(ctx, step.path));
    },

    async ifup(step, ctx) {
      failpoint('network-before-ifup');
      await ensureStateDir(ctx);
      // A stamp from an earlier ifup must not vouch for this one's DNS hook.
      for (const name of step.interfaces) await ctx.sys.unlink(await hostPath(ctx, posix.join(DNS_STAMP_DIR, name)));
      await run(ctx, ifupdownArgs(pathsOf(ctx), 'ifup', step.interfaces), `bringing up ${step.interfaces.join(', ')} with the new configuration`);
      await waitForLeases(ctx, step.leases);
    },
  },

  async backup(ctx, steps) {
    const files: NetworkBackup['files'] = [];
    for (const s of steps) {
      if ((s.action === 'write' || s.action === 'remove') && !files.some((f) => f.path === s.path)) {
        // Only a regular file's bytes can be kept: a symlink (or anything else) there would be
        // replaced by the write and, backed up as "absent", deleted by a revert.
        const st = await ctx.sys.lstat(await hostPath(ctx, s.path));
        if (st && !st.isFile()) throw new FatalError(`${s.path} is ${st.isSymbolicLink() ? 'a symlink' : 'not a regular file'}; the network section only replaces regular files there`);
        const now = await readIfFile(ctx, s.path);
        files.push({ path: s.path, content: now?.content, mode: now?.mode });
      }
    }
    // The DNS hook (new, or the one the old config had) rewrites resolv.conf at ifup: keep its bytes
    // too. A symlink (a resolvconf-managed file) is written through and cannot be put back this way.
    if (steps.some((s) => (s.action === 'write' || s.action === 'remove') && s.path === DNS_HOOK) || managedBlockOf((await readIfFile(ctx, INTERFACES))?.content)?.hooks.includes(DNS_HOOK)) {
      const st = await ctx.sys.lstat(await hostPath(ctx, RESOLV_CONF));
      if (!st || st.isFile()) {
        const now = await readIfFile(ctx, RESOLV_CONF);
        files.push({ path: RESOLV_CONF, content: now?.content, mode: now?.mode });
      } else ctx.log.warn('network: /etc/resolv.conf is not a regular file; a revert cannot restore what the DNS hook writes through it');
    }
    const down = steps.flatMap((s) => (s.action === 'ifdown' ? s.interfaces : []));
    const up = steps.flatMap((s) => (s.action === 'ifup' ? s.interfaces : []));
    const validate = steps.find((s) => s.action === 'validate');
    const namesBefore: Record<string, string> = {};
    if (validate?.action === 'validate') {
      const links = await observeLinks(ctx);
      for (const i of validate.spec.interfaces) {
        const l = links.find((x) => x.name === i.name) ?? links.find((x) => (i.match?.name !== undefined && x.name === i.match.name) || (i.match?.mac !== undefined && x.mac === i.match.mac.toLowerCase()));
        if (l) namesBefore[i.name] = l.name;
      }
    }
    return { files, down, up, namesBefore };
  },

  async revert(ctx, backup) {
    const paths = pathsOf(ctx);
    await ensureStateDir(ctx);
    const steps = new RevertSteps('network', ctx.log);
    // 1. Down with whatever configuration is on disk now (the new one, or part of it). Not
    //    essential: step 4 brings them up again with -f whatever state this left.
    const onDisk = await readCurrentConfig(ctx, (await readIfFile(ctx, INTERFACES))?.content);
    const defined = new Set(onDisk.flatMap(ifaceNames));
    const live = new Set((await observeLinks(ctx)).map((l) => l.name));
    const toDown = [...new Set([...backup.up, ...backup.down])].filter((n) => defined.has(n) && live.has(n));
    if (toDown.length) await steps.step(`bring down ${toDown.join(', ')}`, () => run(ctx, ifupdownArgs(paths, 'ifdown', toDown, ['-f']), `bringing down ${toDown.join(', ')}`), { essential: false });
    // 2. Links get the names they had before.
    for (const [now, before] of Object.entries(backup.namesBefore)) await steps.step(`rename ${now} back to ${before}`, () => renameLink(ctx, now, before));
    // 3. The old files (a bind-mounted resolv.conf is written in place: writeDeviceFile).
    for (const f of [...backup.files].reverse()) {
      await steps.step(f.content === undefined ? `remove ${f.path}` : `restore ${f.path}`, async () => {
        if (f.content === undefined) await ctx.sys.unlink(await hostPath(ctx, f.path));
        else await writeDeviceFile(ctx, f.path, f.content, f.mode ?? 0o644);
      });
    }
    // 4. Up again with the old configuration.
    // -f: an ifdown above that failed half way may have left them marked up in the state file.
    if (backup.down.length) await steps.step(`bring ${backup.down.join(', ')} up with the previous configuration`, () => run(ctx, ifupdownArgs(paths, 'ifup', backup.down, ['-f']), `bringing ${backup.down.join(', ')} up with the previous configuration`));
    steps.finish();
  },
};
