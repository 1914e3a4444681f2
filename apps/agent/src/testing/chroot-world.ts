import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMountinfo } from '../capabilities/generations/mountinfo.js';
import { type CliResult, runAgent } from './agent-process.js';

/**
 * The world of the chroot tests, as root, without touching the host: a private mount namespace
 * (`unshare -m --propagation private`, held open by a sleeping process) that every agent command
 * runs in through nsenter, a scratch --root, and a small root filesystem built from Debian's
 * busybox-static standing in for Alpine's minirootfs.
 *
 * Fakes, because the real ones need the Internet or an Alpine system: `/sbin/apk` is a shell
 * script that records packages in /lib/apk/db/installed the way apk's database lists them
 * (P: lines); `/sbin/openrc` and `/sbin/rc-service` are shell scripts that behave like OpenRC's
 * in the ways the agent relies on: openrc refuses without /run/openrc/softlevel (with OpenRC's
 * message), logs every runlevel it is asked for, and starts the services linked in
 * /etc/runlevels/<level>; the one service (`ticker`) is a sleeping daemon with a pid file.
 */

const APPLETS = ['sh', 'ls', 'cat', 'echo', 'sleep', 'mkdir', 'rm', 'kill', 'ps', 'grep', 'sed', 'id', 'hostname', 'touch', 'test', '[', 'printf', 'ln', 'cp', 'mv', 'true', 'false', 'chmod', 'head', 'tail', 'wc', 'cut', 'basename', 'date', 'readlink', 'pwd', 'env'];

const FAKE_APK = `#!/bin/sh
# Stand-in for apk-tools: add/del edit the database the way apk lists packages.
db=/lib/apk/db/installed
verb=
for a in "$@"; do
	case $a in
		--*) ;;
		add|del) verb=$a ;;
		*)
			name=\${a%%[<>=~]*}
			if [ "$verb" = add ]; then grep -qx "P:$name" $db || printf 'P:%s\\nV:1.0-r0\\n\\n' "$name" >>$db
			elif [ "$verb" = del ]; then sed -i "/^P:$name\\$/,/^\\$/d" $db
			else echo "apk: unknown command" >&2; exit 1; fi ;;
	esac
done
`;

const FAKE_OPENRC = `#!/bin/sh
# Stand-in for OpenRC's openrc: refuses on a system it did not boot, logs the runlevel.
echo "$*" >>/var/log/openrc.calls
if [ ! -e /run/openrc/softlevel ]; then
	echo " * You are attempting to run an openrc service on a" >&2
	echo " * system which openrc did not boot." >&2
	exit 1
fi
level=\${1:-default}
for s in /etc/runlevels/$level/*; do
	[ -e "$s" ] || continue
	/sbin/rc-service "$(basename "$s")" start || exit 1
done
`;

const FAKE_RC_SERVICE = `#!/bin/sh
[ -x "/etc/init.d/$1" ] || { echo "rc-service: service $1 does not exist" >&2; exit 1; }
exec "/etc/init.d/$1" "$2"
`;

const TICKER = `#!/bin/sh
pidfile=/run/ticker.pid
running() { [ -f $pidfile ] && kill -0 "$(cat $pidfile)" 2>/dev/null; }
case $1 in
	start) running && exit 0; sleep 1000000 </dev/null >/dev/null 2>&1 & echo $! >$pidfile ;;
	stop) running && kill "$(cat $pidfile)"; rm -f $pidfile ;;
	status) running ;;
esac
`;

export interface Rootfs {
  tarball: string;
  sha256: string;
}

/** Builds the stand-in "Alpine" root filesystem tarball (gzip) in `dir`. */
export function buildBusyboxRootfs(dir: string): Rootfs {
  const tree = join(dir, 'tree');
  for (const d of ['bin', 'sbin', 'usr/bin', 'etc/init.d', 'etc/runlevels/default', 'etc/apk', 'lib/apk/db', 'proc', 'sys', 'dev', 'run', 'tmp', 'root', 'var/log', 'home']) mkdirSync(join(tree, d), { recursive: true });
  copyFileSync('/bin/busybox', join(tree, 'bin/busybox'));
  chmodSync(join(tree, 'bin/busybox'), 0o755);
  for (const a of APPLETS) symlinkSync('busybox', join(tree, 'bin', a));
  symlinkSync('/bin/busybox', join(tree, 'usr/bin/env'));
  writeFileSync(join(tree, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n');
  writeFileSync(join(tree, 'etc/group'), 'root:x:0:root\nnobody:x:65534:\n');
  writeFileSync(join(tree, 'etc/alpine-release'), '3.20.0\n');
  writeFileSync(join(tree, 'etc/profile'), 'export PS1="(chroot) # "\n');
  writeFileSync(join(tree, 'lib/apk/db/installed'), 'P:busybox\nV:1.35.0-r0\n\nP:alpine-baselayout\nV:3.6-r0\n\n');
  const exe = (p: string, text: string) => writeFileSync(join(tree, p), text, { mode: 0o755 });
  exe('sbin/apk', FAKE_APK);
  exe('sbin/openrc', FAKE_OPENRC);
  exe('sbin/rc-service', FAKE_RC_SERVICE);
  exe('etc/init.d/ticker', TICKER);
  const tarball = join(dir, 'alpine-minirootfs-standin.tar.gz');
  execFileSync('tar', ['-czf', tarball, '--numeric-owner', '-C', tree, '.']);
  rmSync(tree, { recursive: true, force: true });
  return { tarball, sha256: createHash('sha256').update(readFileSync(tarball)).digest('hex') };
}

/** A private mount namespace that lives until `reboot` or `destroy`. */
export class MountNamespace {
  private holder!: ChildProcess;
  private nsId = '';

  constructor() {
    this.start();
  }

  private start(): void {
    this.holder = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sleep', 'infinity'], { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      try {
        const id = readlinkSync(`/proc/${this.holder.pid}/ns/mnt`);
        if (id !== readlinkSync('/proc/self/ns/mnt')) {
          this.nsId = id;
          return;
        }
      } catch {}
      execFileSync('sleep', ['0.02']);
    }
    throw new Error('unshare did not make a mount namespace');
  }

  get pid(): number {
    return this.holder.pid!;
  }

  /** Runs argv in the namespace. */
  get prefix(): string[] {
    return ['nsenter', '-t', String(this.pid), '-m', '--'];
  }

  /** Pids of every process in this namespace (the holder, services started in a chroot, ...). */
  members(): number[] {
    const out: number[] = [];
    for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      try {
        if (readlinkSync(`/proc/${p}/ns/mnt`) === this.nsId) out.push(Number(p));
      } catch {}
    }
    return out;
  }

  /** The namespace's mount table. */
  mounts(): ReturnType<typeof parseMountinfo> {
    return parseMountinfo(readFileSync(`/proc/${this.pid}/mountinfo`, 'utf8'));
  }

  private kill(): void {
    for (const p of this.members()) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {}
    }
    for (let i = 0; i < 100 && this.members().length; i++) execFileSync('sleep', ['0.05']);
  }

  /** A power cut: every process of the namespace dies, its mounts with it; the files stay. */
  reboot(): void {
    this.kill();
    this.start();
  }

  destroy(): void {
    this.kill();
  }
}

export interface ChrootWorld {
  root: string;
  ns: MountNamespace;
  rootfs: Rootfs;
  /** Runs `ibex-agent VERB --spec FILE --root ROOT` in the namespace with `{chroots: section}`. */
  agent(verb: 'plan' | 'apply', section: unknown, env?: Record<string, string>): Promise<CliResult>;
  /** Runs any agent command (flags given by the caller) in the namespace. */
  agentRaw(args: string[], env?: Record<string, string>): Promise<CliResult>;
  /** Runs argv in the namespace. */
  sh(argv: string[]): { code: number; stdout: string; stderr: string };
  host(devicePath: string): string;
  /** Mount points of the namespace at or below a device path (exact components). */
  mountsBelow(devicePath: string): string[];
}

let shared: Rootfs | undefined;
let sharedDir: string | undefined;

/** A fresh world; the rootfs tarball is built once per test file. */
export function chrootWorld(t: { after: (fn: () => unknown) => void }): ChrootWorld {
  if (!shared) {
    sharedDir = mkdtempSync(join(tmpdir(), 'ibex-chroot-rootfs-'));
    shared = buildBusyboxRootfs(sharedDir);
    process.on('exit', () => rmSync(sharedDir!, { recursive: true, force: true }));
  }
  const root = mkdtempSync(join(tmpdir(), 'ibex-chroot-it-'));
  const ns = new MountNamespace();
  t.after(() => {
    ns.destroy();
    // Only once no mount of the namespace is left can the files go (the namespace died with its mounts).
    rmSync(root, { recursive: true, force: true });
  });
  mkdirSync(join(root, 'srv'), { recursive: true });
  copyFileSync(shared.tarball, join(root, 'srv/rootfs.tar.gz'));
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc/resolv.conf'), 'nameserver 192.0.2.53\n');
  let n = 0;
  const w: ChrootWorld = {
    root,
    ns,
    rootfs: shared,
    agent(verb, section, env = {}) {
      const spec = join(root, `spec-${n++}.json`);
      writeFileSync(spec, JSON.stringify({ chroots: section }));
      return runAgent([verb, '--spec', spec, '--root', root], env, 60_000, ns.prefix);
    },
    agentRaw(args, env = {}) {
      return runAgent(args, env, 60_000, ns.prefix);
    },
    sh(argv) {
      // Hooks and scripts run as the router runs them: without the test runner's agent settings (IBEX_AGENT_BIN).
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IBEX_AGENT_') && !k.startsWith('NODE_TEST')));
      try {
        return { code: 0, stdout: execFileSync(ns.prefix[0]!, [...ns.prefix.slice(1), ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env }), stderr: '' };
      } catch (err) {
        const e = err as { status: number; stdout: string; stderr: string };
        return { code: e.status, stdout: e.stdout, stderr: e.stderr };
      }
    },
    host: (p) => join(root, p),
    mountsBelow(p) {
      const h = join(root, p);
      return ns.mounts().map((m) => m.mountPoint).filter((m) => m === h || m.startsWith(`${h}/`));
    },
  };
  return w;
}
