import { spawn } from 'node:child_process';
import { chrootIndexPath } from '../capabilities/chroots/chroots-capability.js';
import { CHROOT_ENV, chrootDown, chrootUp, copyResolv, ensureMounts, inChroot, readRecord } from '../capabilities/chroots/chroot-runtime.js';
import { UsageError } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { readJsonSync } from '../journal/atomic-file.js';
import { NodeSystemAdapter } from '../system/node-system-adapter.js';
import { resolveUnderRoot } from '../system/root-path.js';
import { parseFlags } from './args.js';
import { type CliEnv, commonFlags, configFrom } from './common-flags.js';

export const chrootHelp = `actions:
  up PATH|NAME                  mount what is missing (/proc, /sys, /dev, /run, binds), copy resolv.conf, start its OpenRC services
  down PATH|NAME                stop its services and processes, unmount everything below it (the files stay)
  enter PATH|NAME [-- CMD...]   mount what is missing, then run CMD (default: a login shell) inside with a clean environment

PATH is the chroot's directory on the device; NAME is its name in the chroots section (known once applied).
The boot hooks and the enter-chroot script in the chroot's directory call these. Exit codes: 0 ok,
1 failure (the message says what holds a mount), 2 usage; enter returns the command's own code.
`;

/** `ibex-agent chroot ACTION PATH|NAME [flags] [-- CMD...]` */
export async function chrootCommand(argv: string[], io: CliEnv): Promise<number> {
  const sep = argv.indexOf('--');
  const [action, target, ...rest] = sep >= 0 ? argv.slice(0, sep) : argv;
  const cmd = sep >= 0 ? argv.slice(sep + 1) : [];
  if (!action || !['up', 'down', 'enter'].includes(action)) throw new UsageError(`ibex-agent chroot: the action must be up, down or enter (got ${action ? `"${action}"` : 'none'}); see ibex-agent help chroot`);
  if (!target || target.startsWith('--')) throw new UsageError(`ibex-agent chroot ${action}: give the chroot's PATH or NAME`);
  if (cmd.length && action !== 'enter') throw new UsageError(`ibex-agent chroot ${action}: a command after -- is only for enter`);
  const flags = parseFlags(`chroot ${action}`, rest, commonFlags);
  const cfg = configFrom(flags, io);
  const sys = new NodeSystemAdapter();
  const log = createLogger({ level: cfg.logLevel, format: cfg.logFormat, write: (l) => io.err(l) });
  let path = target;
  if (!target.startsWith('/')) {
    const index = (readJsonSync(chrootIndexPath(cfg.root)) as Record<string, string> | undefined) ?? {};
    const p = index[target];
    if (!p) throw new UsageError(`ibex-agent chroot: no chroot named "${target}" was applied on this device (known: ${Object.keys(index).join(', ') || 'none'}); give its path instead`);
    path = p;
  }
  const host = (await resolveUnderRoot(sys, cfg.root, path)).host;
  const record = readRecord(host);
  if (!record) {
    io.err(`ibex-agent chroot: ${path} is not a chroot installed by Ibex (no .ibex-chroot.json there); apply a chroots section first\n`);
    return 1;
  }
  const d = { sys, log };
  const hostResolv = (await resolveUnderRoot(sys, cfg.root, '/etc/resolv.conf')).host;
  if (action === 'up') {
    await chrootUp(d, host, record, hostResolv);
    return 0;
  }
  if (action === 'down') {
    await chrootDown(d, host, record.services);
    return 0;
  }
  await ensureMounts(d, host, record.mounts);
  if (record.dnsCopy) await copyResolv(sys, hostResolv, host);
  const term: Record<string, string> = io.env.TERM ? { TERM: io.env.TERM } : {};
  const [prog, ...args] = inChroot(host, cmd.length ? cmd : ['/bin/sh', '-l'], term);
  return new Promise((resolve) => {
    const child = spawn(prog, args, { stdio: 'inherit', env: { ...CHROOT_ENV }, cwd: '/' });
    child.on('error', (e) => {
      io.err(`ibex-agent chroot enter: chroot could not run: ${e.message}\n`);
      resolve(127);
    });
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}
