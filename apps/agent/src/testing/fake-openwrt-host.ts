import { spawnSync } from 'node:child_process';
import type { Stats } from 'node:fs';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeSystemAdapter } from '../system/node-system-adapter.js';
import type { ExecOptions, ExecResult, SystemAdapter } from '../system/system-adapter.js';

/**
 * A host with Wi-Fi hardware, behind the SystemAdapter the capability uses, for what this
 * machine cannot do for real (no mac80211_hwsim: no phy can exist here). It answers the exact
 * commands the openwrt capability runs: `ip` for a handful of links on the host and in one
 * container namespace, `iw phy PHY set netns PID` (moving the phy and its interfaces, or failing
 * the way a driver without namespace support does), /proc and /sys reads, and the container's
 * `/sbin/uci` and init scripts: uci is the real stand-in (openwrt-standin/uci.awk, under BusyBox
 * awk, on a config directory of this fake), so UCI changes are applied for real. Every argv is
 * recorded in `calls`. Files under the agent's --root are the real filesystem.
 */

interface FakeLink {
  name: string;
  ifindex: number;
  mac: string;
  up: boolean;
  kind?: string;
}

const STANDIN_AWK = fileURLToPath(new URL('../../src/testing/openwrt-standin/uci.awk', import.meta.url));

const ok = (stdout = ''): ExecResult => ({ code: 0, signal: null, stdout, stderr: '' });
const fail = (stderr: string, code = 1): ExecResult => ({ code, signal: null, stdout: '', stderr });

function fakeStats(kind: 'dir' | 'symlink' | 'file', ino = 1): Stats {
  return { isDirectory: () => kind === 'dir', isSymbolicLink: () => kind === 'symlink', isFile: () => kind === 'file', ino, dev: 0, mode: kind === 'dir' ? 0o40755 : 0o100644 } as unknown as Stats;
}

export class FakeOpenwrtHost implements SystemAdapter {
  readonly calls: string[][] = [];
  /** What was written to each command's stdin (uci batch, uci import), in order. */
  readonly inputs: Array<{ argv: string[]; input: string }> = [];
  readonly pid = 4242;
  readonly nsIno = 4026532777;
  readonly agentIno = 4026531840;
  readonly host: FakeLink[] = [];
  readonly inside: FakeLink[] = [{ name: 'lo', ifindex: 1, mac: '00:00:00:00:00:00', up: true, kind: undefined }];
  /** Phys by name: where they are, their MAC and their interfaces. */
  readonly phys = new Map<string, { where: 'host' | 'inside'; mac: string; netdevs: string[] }>();
  /** What `iw phy ... set netns` answers instead of moving (a driver without netns support). */
  iwFails?: { code: number; stderr: string };
  /** Reloads (argv after the exec prefix) that fail. */
  readonly failingReloads = new Set<string>();
  readonly reloads: string[] = [];
  /** Runs before each `uci batch` (to change the config underneath). */
  beforeBatch?: () => void;
  readonly uciDir: string;
  private readonly real = new NodeSystemAdapter();
  private nextIndex = 10;

  constructor(configs: Record<string, string>) {
    this.uciDir = mkdtempSync(join(tmpdir(), 'ibex-fake-uci-'));
    mkdirSync(join(this.uciDir, 'config'));
    mkdirSync(join(this.uciDir, 'save'));
    for (const [n, t] of Object.entries(configs)) writeFileSync(join(this.uciDir, 'config', n), t);
  }

  addHostLink(name: string, mac: string, kind?: string): void {
    this.host.push({ name, ifindex: this.nextIndex++, mac, up: false, kind });
  }

  addPhy(phy: string, mac: string, netdev: string): void {
    this.phys.set(phy, { where: 'host', mac, netdevs: [netdev] });
    this.addHostLink(netdev, mac);
  }

  /** uci itself, for the test's own look at the container config. */
  uci(args: string[], input?: string): ExecResult {
    const inFile = join(this.uciDir, 'stdin');
    writeFileSync(inFile, input ?? '');
    const r = spawnSync('busybox', ['awk', '-f', STANDIN_AWK, '--', '-c', join(this.uciDir, 'config'), '-P', join(this.uciDir, 'save'), ...args], { encoding: 'utf8', env: { UCI_STANDIN_INPUT: inFile } });
    return { code: r.status, signal: null, stdout: r.stdout, stderr: r.stderr };
  }

  destroy(): void {
    rmSync(this.uciDir, { recursive: true, force: true });
  }

  private json(links: FakeLink[]): string {
    return JSON.stringify(links.map((l) => ({ ifindex: l.ifindex, ifname: l.name, address: l.mac, flags: l.up ? ['BROADCAST', 'UP'] : ['BROADCAST'], ...(l.kind ? { linkinfo: { info_kind: l.kind } } : {}), addr_info: [] })));
  }

  private ipLink(where: FakeLink[], other: FakeLink[], args: string[]): ExecResult {
    // ip link set dev NAME (up|down|name NEW|netns TARGET)
    if (args[0] !== 'link' || args[1] !== 'set' || args[2] !== 'dev') return fail(`fake: unsupported ip ${args.join(' ')}`);
    const l = where.find((x) => x.name === args[3]);
    if (!l) return fail(`Cannot find device "${args[3]}"`);
    const [op, value] = args.slice(4);
    if (op === 'up' || op === 'down') l.up = op === 'up';
    else if (op === 'name') {
      if (where.some((x) => x.name === value)) return fail('RTNETLINK answers: File exists');
      l.name = value!;
    } else if (op === 'netns') {
      where.splice(where.indexOf(l), 1);
      l.up = false;
      other.push(l);
    } else return fail(`fake: unsupported ip ${args.join(' ')}`);
    return ok();
  }

  private iwMove(phy: string, to: 'host' | 'inside'): ExecResult {
    const p = this.phys.get(phy);
    if (!p || p.where === to) return fail('command failed: No such device (-19)', 237);
    if (to === 'inside' && this.iwFails) return fail(this.iwFails.stderr, this.iwFails.code);
    const [from, dest] = to === 'inside' ? [this.host, this.inside] : [this.inside, this.host];
    for (const n of p.netdevs) {
      const l = from.find((x) => x.name === n);
      if (l) {
        from.splice(from.indexOf(l), 1);
        dest.push(l);
      }
    }
    p.where = to;
    return ok();
  }

  async exec(argv: readonly [string, ...string[]], opts: ExecOptions = {}): Promise<ExecResult> {
    this.calls.push([...argv]);
    if (opts.input) this.inputs.push({ argv: [...argv], input: opts.input });
    const a = [...argv];
    const nsNet = `--net=/proc/${this.pid}/ns/net`;
    if (a[0] === 'ip' && a[1] === '-j' && a[2] === '-d') return ok(this.json(this.host));
    if (a[0] === 'ip' && a[1] === '-j') return ok('[]');
    if (a[0] === 'ip') return this.ipLink(this.host, this.inside, a.slice(1));
    if (a[0] === 'iw' && a[1] === 'phy' && a[3] === 'set' && a[4] === 'netns') return a[5] === String(this.pid) ? this.iwMove(a[2]!, 'inside') : fail(`fake: iw into ${a[5]}`);
    if (a[0] === 'nsenter' && a[1] === nsNet && a[2] === '--') {
      const inner = a.slice(3);
      if (inner[0] === 'ip' && inner[1] === '-j') return ok(this.json(this.inside));
      if (inner[0] === 'ip') return this.ipLink(this.inside, this.host, inner.slice(1));
      if (inner[0] === 'iw' && inner[1] === 'phy' && inner.length === 2)
        return ok(
          [...this.phys]
            .filter(([, p]) => p.where === 'inside')
            .map(([n]) => `Wiphy ${n}\n\tmax # scan SSIDs: 4\n`)
            .join(''),
        );
      if (inner[0] === 'iw' && inner[3] === 'set' && inner[4] === 'netns') return this.iwMove(inner[2]!, 'host');
    }
    if (a[0] === 'nsenter' && a[1] === '-t' && a[2] === String(this.pid)) {
      const inner = a.slice(a.indexOf('--') + 1);
      if (inner[0] === '/sbin/uci') {
        if (inner[1] === 'batch') this.beforeBatch?.();
        return this.uci(inner.slice(1), opts.input);
      }
      const what = inner.join(' ');
      this.reloads.push(what);
      return this.failingReloads.has(what) ? fail(`fake: ${what} failed on purpose`) : ok();
    }
    return fail(`fake: no such command here: ${a.join(' ')}`, 127);
  }

  async lstat(path: string): Promise<Stats | undefined> {
    if (path === '/proc/self/ns/net' || path === `/proc/${this.pid}/ns/net`) return fakeStats('symlink');
    if (path === '/proc/self' || path === `/proc/${this.pid}`) return fakeStats('dir');
    if (path.startsWith('/proc/')) return undefined;
    if (path.startsWith('/sys/')) return undefined;
    return this.real.lstat(path);
  }

  async readFile(path: string): Promise<Buffer> {
    if (path === `/proc/${this.pid}/stat`) return Buffer.from(`${this.pid} (sleep) S 1 ${this.pid} ${this.pid} 0 -1 4194560 96 0 0 0 0 0 0 0 20 0 1 0 81234 2555904 200 18446744073709551615\n`);
    const m = /^\/sys\/class\/ieee80211\/([^/]+)\/macaddress$/.exec(path);
    if (m) {
      const p = this.phys.get(m[1]!);
      if (p?.where === 'host') return Buffer.from(`${p.mac}\n`);
      throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    }
    return this.real.readFile(path);
  }

  async readlink(path: string): Promise<string> {
    if (path === '/proc/self/ns/net') return `net:[${this.agentIno}]`;
    if (path === `/proc/${this.pid}/ns/net`) return `net:[${this.nsIno}]`;
    const m = /^\/sys\/class\/net\/([^/]+)\/phy80211$/.exec(path);
    if (m) {
      const phy = [...this.phys].find(([, p]) => p.where === 'host' && p.netdevs.includes(m[1]!));
      if (phy) return `../../ieee80211/${phy[0]}`;
      throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    }
    return this.real.readlink(path);
  }

  async readdir(path: string): Promise<string[]> {
    if (path === '/sys/class/ieee80211') return [...this.phys].filter(([, p]) => p.where === 'host').map(([n]) => n);
    if (path === '/sys/class/net') return this.host.map((l) => l.name);
    return this.real.readdir(path);
  }

  writeFileAtomic(...args: Parameters<SystemAdapter['writeFileAtomic']>) {
    return this.real.writeFileAtomic(...args);
  }
  writeFileInPlace(...args: Parameters<SystemAdapter['writeFileInPlace']>) {
    return this.real.writeFileInPlace(...args);
  }
  mountPoints() {
    return this.real.mountPoints();
  }
  realpath(path: string) {
    return this.real.realpath(path);
  }
  symlinkAtomic(target: string, path: string) {
    return this.real.symlinkAtomic(target, path);
  }
  chmod(path: string, mode: number) {
    return this.real.chmod(path, mode);
  }
  unlink(path: string) {
    return this.real.unlink(path);
  }
  mkdir(path: string, mode: number) {
    return this.real.mkdir(path, mode);
  }
  rmdirIfEmpty(path: string) {
    return this.real.rmdirIfEmpty(path);
  }
  rename(from: string, to: string) {
    return this.real.rename(from, to);
  }
}
