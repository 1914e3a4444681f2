import { spawn } from 'node:child_process';
import { isSea } from 'node:sea';
import { join } from 'node:path';
import type { SystemAdapter } from '../../system/system-adapter.js';

/**
 * Running a command inside a new generation (the wiki's `chroot "$SNP" ...` with /proc, /sys and
 * /dev mounted) without a shell string and without leaking a mount into the host:
 *
 *   setpriv --pdeathsig KILL -- unshare --mount --propagation private --pid --fork --kill-child --
 *     <ibex-agent> chroot-exec DIR -- ARGV...
 *
 * The agent re-runs itself as the helper inside the private mount namespace; the helper mounts
 * proc/sys/dev under DIR and runs `chroot DIR ARGV...`. The mounts belong to that namespace only
 * and vanish with it, also when the agent is SIGKILLed (pdeathsig kills unshare, kill-child the rest).
 */

/** How to run this program again: the single executable, or `node main.js` in development. */
export function defaultSelfCommand(): string[] {
  return isSea() ? [process.execPath] : [process.execPath, process.argv[1]!];
}

export function chrootArgv(selfCommand: readonly string[], dir: string, argv: readonly string[]): [string, ...string[]] {
  return ['setpriv', '--pdeathsig', 'KILL', '--', 'unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--', ...selfCommand, 'chroot-exec', dir, '--', ...argv];
}

/** A clean environment for the chroot: nothing of the agent's settings leaks into the new root. */
const CHROOT_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8' };

/**
 * The helper's side (`ibex-agent chroot-exec DIR -- ARGV...`), already inside the private mount
 * namespace. Refuses to run outside one: the mounts would land in the host.
 */
export async function chrootExecMain(args: readonly string[], sys: SystemAdapter, err: (t: string) => void): Promise<number> {
  const sep = args.indexOf('--');
  const dir = args[0];
  const argv = sep >= 0 ? args.slice(sep + 1) : [];
  if (!dir || sep !== 1 || argv.length === 0) {
    err('usage: ibex-agent chroot-exec DIR -- PROGRAM [ARGS...] (internal: used by generations upgrades)\n');
    return 2;
  }
  const [own, init] = await Promise.all([sys.readlink('/proc/self/ns/mnt'), sys.readlink('/proc/1/ns/mnt').catch(() => '')]);
  if (process.pid !== 1 || own === init) {
    err('ibex-agent chroot-exec: not inside a private mount and pid namespace; refusing to mount (run through unshare as the generations capability does)\n');
    return 2;
  }
  const mounts: [string, string[]][] = [
    ['proc', ['mount', '-t', 'proc', 'proc', join(dir, 'proc')]],
    ['sys', ['mount', '-t', 'sysfs', 'sysfs', join(dir, 'sys')]],
    ['dev', ['mount', '--rbind', '/dev', join(dir, 'dev')]],
  ];
  for (const [sub, m] of mounts) {
    if (!(await sys.lstat(join(dir, sub)))?.isDirectory()) continue;
    const r = await sys.exec(m as [string, ...string[]]);
    if (r.code !== 0) {
      err(`ibex-agent chroot-exec: ${m.join(' ')} failed: ${r.stderr.trim()}\n`);
      return 1;
    }
  }
  return new Promise((resolve) => {
    const child = spawn('chroot', [dir, ...argv], { stdio: ['ignore', 'inherit', 'inherit'], env: CHROOT_ENV, cwd: '/' });
    child.on('error', (e) => {
      err(`ibex-agent chroot-exec: chroot could not run: ${e.message}\n`);
      resolve(127);
    });
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}
