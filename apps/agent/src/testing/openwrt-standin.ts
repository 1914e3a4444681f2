import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sh } from './netns-device.js';
import { waitFor } from './wait.js';

/**
 * A stand-in for an OpenWrt container, for tests on a machine without OpenWrt or a container
 * engine: a root filesystem made of static BusyBox, a `uci` stand-in (openwrt-standin/uci.awk,
 * written apart from the agent's own UCI code) and stand-ins of the init scripts the agent
 * reloads (openwrt-standin/*.init), run as a process in its own network, mount, UTS and IPC
 * namespaces, chrooted into that filesystem. The agent reaches it exactly as it reaches a real
 * one of runtime "process": `ip link set ... netns PID`, `nsenter -t PID ...`, `/sbin/uci`.
 * `tarball()` packs the same filesystem for `podman import`.
 */
const STANDIN_DIR = fileURLToPath(new URL('../../src/testing/openwrt-standin/', import.meta.url));
const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'awk', 'cat', 'rm', 'mv', 'mkdir', 'ip', 'sleep', 'echo', 'printf', 'grep', 'sed', 'ls', 'ln', 'touch', 'cut', 'tr', 'head', 'tail', 'wc', 'ping', 'true', 'false', 'test', '['];

/** OpenWrt's stock configs as a fresh container has them (anonymous sections and all), trimmed. */
export const STOCK_CONFIG: Record<string, string> = {
  network: `
config interface 'loopback'
	option device 'lo'
	option proto 'static'
	option ipaddr '127.0.0.1'
	option netmask '255.0.0.0'

config globals 'globals'
	option ula_prefix 'fd4e:1b2c:3d4e::/48'

config device
	option name 'br-lan'
	option type 'bridge'
	list ports 'eth0'

config interface 'lan'
	option device 'br-lan'
	option proto 'static'
	option ipaddr '192.168.1.1'
	option netmask '255.255.255.0'
	option ip6assign '60'
`,
  dhcp: `
config dnsmasq
	option domainneeded '1'
	option localise_queries '1'
	option local '/lan/'
	option domain 'lan'
	option leasefile '/tmp/dhcp.leases'

config dhcp 'lan'
	option interface 'lan'
	option start '100'
	option limit '150'
	option leasetime '12h'

config odhcpd 'odhcpd'
	option maindhcp '0'
`,
  firewall: `
config defaults
	option syn_flood '1'
	option input 'ACCEPT'
	option output 'ACCEPT'
	option forward 'REJECT'

config zone
	option name 'lan'
	list network 'lan'
	option input 'ACCEPT'
	option output 'ACCEPT'
	option forward 'ACCEPT'

config rule
	option name 'Allow-Ping'
	option src 'wan'
	option proto 'icmp'
	option target 'ACCEPT'
`,
};

export class StandinOpenwrt {
  readonly dir: string;
  readonly rootfs: string;
  private child?: ChildProcess;
  private pidValue?: number;

  private constructor(prefix: string) {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
    this.rootfs = join(this.dir, 'rootfs');
  }

  /** Builds the filesystem (with `configs` in /etc/config; default: OpenWrt's stock ones). */
  static create(configs: Record<string, string> = STOCK_CONFIG, prefix = 'ibex-owrt-'): StandinOpenwrt {
    const s = new StandinOpenwrt(prefix);
    const r = s.rootfs;
    for (const d of ['bin', 'sbin', 'usr/lib/ibex-standin', 'etc/config', 'etc/init.d', 'tmp', 'var/log', 'proc', 'dev', 'sys', 'run']) mkdirSync(join(r, d), { recursive: true });
    copyFileSync(BUSYBOX, join(r, 'bin/busybox'));
    chmodSync(join(r, 'bin/busybox'), 0o755);
    for (const a of APPLETS) symlinkSync('busybox', join(r, 'bin', a));
    const install = (from: string, to: string) => {
      copyFileSync(join(STANDIN_DIR, from), join(r, to));
      chmodSync(join(r, to), 0o755);
    };
    install('uci', 'sbin/uci');
    copyFileSync(join(STANDIN_DIR, 'uci.awk'), join(r, 'usr/lib/ibex-standin/uci.awk'));
    install('network.init', 'etc/init.d/network');
    for (const svc of ['dnsmasq', 'firewall']) install('service.init', `etc/init.d/${svc}`);
    install('service.init', 'sbin/wifi');
    writeFileSync(join(r, 'var/log/standin.log'), '');
    for (const [name, text] of Object.entries(configs)) writeFileSync(join(r, 'etc/config', name), text);
    return s;
  }

  get pid(): number {
    if (this.pidValue === undefined) throw new Error('the stand-in container is not running');
    return this.pidValue;
  }

  get running(): boolean {
    return this.pidValue !== undefined;
  }

  /** Starts it (again: a restart gets a new pid and a new network namespace). `prefix` runs unshare elsewhere, e.g. `ip netns exec NS`. */
  async start(prefix: string[] = []): Promise<number> {
    if (this.child) throw new Error('already running');
    const argv = [...prefix, 'unshare', '--net', '--mount', '--uts', '--ipc', '--propagation', 'private', '--', 'chroot', this.rootfs, '/bin/sleep', '2147483647'];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) {
        this.child = undefined;
        this.pidValue = undefined;
      }
    });
    // `ip netns exec` and unshare exec the next program: the pid is the sleep's once it runs chrooted.
    await waitFor('the stand-in container to run', () => existsSync(`/proc/${child.pid}/root/sbin/uci`) && readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').startsWith('/bin/sleep'), 20_000);
    this.pidValue = child.pid!;
    return this.pidValue;
  }

  /** SIGKILL, and waits until it is gone (its namespace with it). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }

  /** "net:[inode]" of its namespace. */
  nsId(): string {
    return sh(['readlink', `/proc/${this.pid}/ns/net`]).stdout.trim();
  }

  /** This run of it as the agent names it: namespace, pid and start time (field 22 of /proc/PID/stat). */
  instance(): string {
    const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
    return `${this.nsId()}@${this.pid}.${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  }

  /** Runs a program of the container (in its namespaces and filesystem), as the agent does. */
  exec(argv: string[], check = true): { code: number | null; stdout: string; stderr: string } {
    return sh(['nsenter', '-t', String(this.pid), '-m', '-u', '-i', '-n', '-r', '-w', '--', ...argv], check);
  }

  /** A host program (ip, iw) in its network namespace. */
  inNetns(argv: string[], check = true): { code: number | null; stdout: string; stderr: string } {
    return sh(['nsenter', `--net=/proc/${this.pid}/ns/net`, '--', ...argv], check);
  }

  links(): Array<{ ifname: string; address?: string; flags: string[]; linkinfo?: { info_kind?: string }; addr_info: Array<{ family: string; local: string; prefixlen: number }> }> {
    return JSON.parse(this.inNetns(['ip', '-j', '-d', 'addr', 'show']).stdout);
  }

  /** /etc/config/NAME as committed. */
  config(name: string): string {
    return readFileSync(join(this.rootfs, 'etc/config', name), 'utf8');
  }

  /** The reload calls the init-script stand-ins logged. */
  reloads(): string[] {
    return readFileSync(join(this.rootfs, 'var/log/standin.log'), 'utf8').split('\n').filter(Boolean);
  }

  /** Makes an init-script stand-in fail: always (until `failing(name, false)`), or the next time only. */
  failing(name: string, how: 'always' | 'once' | false = 'always'): void {
    const always = join(this.rootfs, `etc/standin-fail-${name}`);
    const once = join(this.rootfs, `etc/standin-fail-once-${name}`);
    rmSync(always, { force: true });
    rmSync(once, { force: true });
    if (how) writeFileSync(how === 'once' ? once : always, '');
  }

  /** The filesystem as a tarball (for `podman import`). */
  tarball(): string {
    const out = join(this.dir, 'rootfs.tar');
    sh(['tar', '-C', this.rootfs, '-cf', out, '.']);
    return out;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
