import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pickLinkLocalBlock } from '@ibex/test-support';
import { scratchRoot } from './agent-process.js';

/** Runs a program (argv) to completion; throws with its output when it fails and `check` is set. */
export function sh(argv: string[], check = true): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  if (check && r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Whether a process with this pid exists (a lock holder that died leaves its lock behind). */
function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface IpAddr {
  ifname: string;
  address?: string;
  flags: string[];
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}
export interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
}

/**
 * A device for network tests: a network namespace with a scratch root whose /etc/network is
 * what ifupdown sees inside it (ip netns exec bind-mounts /etc/netns/NAME/network over
 * /etc/network, and resolv.conf likewise, so hooks and the DHCP client touch only the scratch
 * root), plus a peer namespace at the other end of its veth links. Names are unique (pid +
 * random) and `destroy` removes everything, also after a failure.
 */
export class NetnsDevice {
  readonly id = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
  readonly ns = `ibxn-${this.id}`;
  readonly peer = `ibxp-${this.id}`;
  readonly root: string;
  readonly dataDir: string;
  private readonly cleanupRoot: () => void;
  private readonly hostLinks: string[] = [];
  private readonly locks: string[] = [];
  private destroyed = false;

  private constructor() {
    const s = scratchRoot('ibex-net-it-');
    this.root = s.root;
    this.dataDir = s.dataDir;
    this.cleanupRoot = s.cleanup;
  }

  static create(): NetnsDevice {
    const d = new NetnsDevice();
    try {
      sh(['ip', 'netns', 'add', d.ns]);
      sh(['ip', 'netns', 'add', d.peer]);
      mkdirSync(join(d.root, 'etc/network'), { recursive: true });
      writeFileSync(join(d.root, 'etc/resolv.conf'), '');
      mkdirSync(`/etc/netns/${d.ns}`, { recursive: true });
      symlinkSync(join(d.root, 'etc/network'), `/etc/netns/${d.ns}/network`);
      symlinkSync(join(d.root, 'etc/resolv.conf'), `/etc/netns/${d.ns}/resolv.conf`);
      sh(['ip', '-n', d.peer, 'link', 'set', 'lo', 'up']);
    } catch (err) {
      d.destroy();
      throw err;
    }
    return d;
  }

  /**
   * An interface name unique on this host (at most 15 characters). ifupdown-ng's dhcp executor
   * keeps udhcpc's pid file in the host's /run, named after the interface only
   * (/run/udhcpc.IFACE.pid, fixed in /usr/libexec/ifupdown-ng/dhcp, no option moves it), so two
   * tests running at once (other files, other worktrees) must not give a DHCP interface the same
   * name: one's ifdown would kill the other's client.
   */
  uniqueName(prefix: string): string {
    const name = `${prefix}${this.id}`;
    if (name.length > 15) throw new Error(`interface name ${name} is longer than 15 characters: use a shorter prefix`);
    return name;
  }

  /**
   * For a test that must use a fixed DHCP interface name (the issue scenario's eth1_dhcp): holds a
   * host-wide lock on that name until the device is destroyed, so concurrent runs of the test take
   * turns instead of sharing /run/udhcpc.NAME.pid. A lock whose holder died is taken over.
   */
  async holdName(name: string, timeoutMs = 300_000): Promise<void> {
    const lock = `/run/lock/ibex-test-iface-${name}`;
    mkdirSync('/run/lock', { recursive: true });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        writeFileSync(lock, `${process.pid}\n`, { flag: 'wx' });
        this.locks.push(lock);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let holder = NaN;
      try {
        holder = Number(readFileSync(lock, 'utf8').trim());
      } catch {}
      if (!alive(holder)) rmSync(lock, { force: true });
      else if (Date.now() > deadline) throw new Error(`interface name ${name} stayed locked by pid ${holder} (${lock})`);
      else await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** argv prefix that runs a program inside the device namespace. */
  get prefix(): string[] {
    return ['ip', 'netns', 'exec', this.ns];
  }

  /** A veth pair: `name` inside the device (down, like a fresh NIC), `peerName` up in the peer namespace. */
  addLink(name: string, peerName: string, mac?: string): void {
    const tmp = `v${this.id}${randomBytes(1).toString('hex')}`;
    sh(['ip', 'link', 'add', tmp, ...(mac ? ['address', mac] : []), 'type', 'veth', 'peer', 'name', `${tmp}p`]);
    this.hostLinks.push(tmp);
    sh(['ip', 'link', 'set', tmp, 'netns', this.ns]);
    sh(['ip', 'link', 'set', `${tmp}p`, 'netns', this.peer]);
    sh(['ip', '-n', this.ns, 'link', 'set', tmp, 'name', name]);
    sh(['ip', '-n', this.peer, 'link', 'set', `${tmp}p`, 'name', peerName]);
    sh(['ip', '-n', this.peer, 'link', 'set', peerName, 'up']);
  }

  /**
   * A veth pair between the host (where the test's scripted controller listens) and the device:
   * link-local /30 addresses (169.254.0.0/16) that exist only on this link. Returns the
   * addresses; the device side is left unconfigured (its network spec configures it).
   */
  addHostLink(name: string): { hostIf: string; hostIp: string; deviceIp: string; otherDeviceIp: string } {
    const hostIf = `h${this.id}`.slice(0, 15);
    const tmp = `d${this.id}`.slice(0, 15);
    sh(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', tmp]);
    this.hostLinks.push(hostIf);
    sh(['ip', 'link', 'set', tmp, 'netns', this.ns]);
    sh(['ip', '-n', this.ns, 'link', 'set', tmp, 'name', name]);
    for (let attempt = 0; attempt < 20; attempt++) {
      // The same /29 blocks as the e2e helper (test/src/e2e/helpers/netns.ts), so the two never collide.
      const block = pickLinkLocalBlock(sh(['ip', '-j', '-4', 'addr', 'show']).stdout);
      if (!block || sh(['ip', 'addr', 'add', `${block.hostIp}/30`, 'dev', hostIf], false).code !== 0) continue;
      sh(['ip', 'link', 'set', hostIf, 'up']);
      // otherDeviceIp is in the next /30: moving the device there cuts it off from the host.
      return { hostIf, hostIp: block.hostIp, deviceIp: block.peerIp, otherDeviceIp: block.otherPeerIp };
    }
    throw new Error('could not find a free link-local /30 for the test veth');
  }

  /** BusyBox udhcpd in the peer namespace on `peerIf` (which gets `serverIp/24`). */
  startDhcpServer(peerIf: string, serverIp: string, start: string, end: string): void {
    sh(['ip', '-n', this.peer, 'addr', 'add', `${serverIp}/24`, 'dev', peerIf]);
    const dir = join(this.root, 'dhcp-server');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'leases'), '');
    writeFileSync(
      join(dir, 'udhcpd.conf'),
      [`start ${start}`, `end ${end}`, `interface ${peerIf}`, `lease_file ${dir}/leases`, `pidfile ${dir}/udhcpd.pid`, 'option subnet 255.255.255.0', 'option lease 600', ''].join('\n'),
    );
    // udhcpd daemonizes; destroy() kills what runs in the peer namespace.
    sh(['ip', 'netns', 'exec', this.peer, 'busybox', 'udhcpd', join(dir, 'udhcpd.conf')]);
  }

  addrs(): IpAddr[] {
    return JSON.parse(sh(['ip', '-n', this.ns, '-j', 'addr', 'show']).stdout) as IpAddr[];
  }

  link(name: string): IpAddr | undefined {
    return this.addrs().find((l) => l.ifname === name);
  }

  ipv4Of(name: string): string[] {
    return (this.link(name)?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
  }

  routes(): IpRoute[] {
    return JSON.parse(sh(['ip', '-n', this.ns, '-j', 'route', 'show']).stdout) as IpRoute[];
  }

  /** ifupdown-ng inside the device, against the scratch root's files and state. */
  ifupdown(tool: 'ifup' | 'ifdown', names: string[]): { code: number | null; stdout: string; stderr: string } {
    mkdirSync(join(this.root, 'run'), { recursive: true });
    return sh([...this.prefix, tool, '-i', join(this.root, 'etc/network/interfaces'), '-S', join(this.root, 'run/ifstate'), ...names], false);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const ns of [this.ns, this.peer]) {
      // udhcpc/udhcpd and anything else left running there.
      const pids = sh(['ip', 'netns', 'pids', ns], false).stdout.split('\n').filter(Boolean);
      // ifupdown-ng's dhcp executor keeps udhcpc's pid file in the host's /run.
      for (const f of readdirSync('/run').filter((n) => /^udhcpc\..*\.pid$/.test(n))) {
        try {
          if (pids.includes(readFileSync(join('/run', f), 'utf8').trim())) rmSync(join('/run', f), { force: true });
        } catch {}
      }
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {}
      }
      sh(['ip', 'netns', 'del', ns], false);
    }
    for (const l of this.hostLinks) sh(['ip', 'link', 'del', l], false);
    rmSync(`/etc/netns/${this.ns}`, { recursive: true, force: true });
    this.cleanupRoot();
    // After the namespaces are gone: nothing of ours uses the names any more.
    for (const l of this.locks) {
      try {
        if (readFileSync(l, 'utf8').trim() === String(process.pid)) rmSync(l, { force: true });
      } catch {}
    }
  }
}
