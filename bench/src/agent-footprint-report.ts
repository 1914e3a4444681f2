// The pure parts of bench:agent-footprint (agent-footprint.bench.ts): flags, /proc parsing,
// medians and the targets. No I/O (but --help, which prints the usage and exits).

export const TARGETS = { idleRssMiB: 50, anonMiB: 20, startMs: 300, addedMiB: 3 } as const;


const usage = `usage: npm run bench:agent-footprint -- [--arch x64,arm64] [--runs N] [--idle-s S] [--warm] [--no-xz] [--json] [--controller-log F] [--agent-log F]
  --arch LIST          architectures (default x64, and arm64 when qemu-aarch64-static and its sysroot are here)
  --runs N             starts timed per architecture (default 7; 3 under qemu)
  --idle-s S           how long the connected agent idles before its memory is read (default 10)
  --json               print the result as JSON on stdout
  --controller-log F   write the controller's output to F
  --agent-log F        append the agents' output (JSON lines, debug level) to F
  --no-xz              skip the xz sizes (compressing takes a while; for quick experiments)
  --warm               also time starts with the binary in the page cache (a restart, not a boot)`;

export interface Flags {
  archs: Array<'x64' | 'arm64'>;
  runs?: number;
  idleS: number;
  json: boolean;
  log?: string;
  agentLog?: string;
  warm: boolean;
  xz: boolean;
}

export function parseFlags(argv: readonly string[], qemu: boolean): Flags {
  const out: Flags = { archs: qemu ? ['x64', 'arm64'] : ['x64'], idleS: 10, json: false, warm: false, xz: true };
  const int = (name: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number ${min}-${max}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--arch') {
      const list = (argv[++i] ?? '').split(',');
      for (const x of list) if (x !== 'x64' && x !== 'arm64') throw new Error(`--arch: unknown architecture "${x}"; use x64, arm64 or x64,arm64`);
      out.archs = list as Flags['archs'];
    } else if (a === '--runs') out.runs = int('runs', argv[++i], 1, 100);
    else if (a === '--idle-s') out.idleS = int('idle-s', argv[++i], 1, 3600);
    else if (a === '--json') out.json = true;
    else if (a === '--warm') out.warm = true;
    else if (a === '--no-xz') out.xz = false;
    else if (a === '--agent-log') {
      const f = argv[++i];
      if (!f) throw new Error('--agent-log needs a file');
      out.agentLog = f;
    }
    else if (a === '--controller-log') {
      const f = argv[++i];
      if (!f) throw new Error('--controller-log needs a file');
      out.log = f;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    } else throw new Error(`unknown flag ${a}\n${usage}`);
  }
  return out;
}

export interface Memory {
  rssMiB: number;
  anonMiB: number;
  fileMiB: number;
  peakMiB: number;
  pssMiB: number;
  pssAnonMiB: number;
}

/** Memory of a process from the text of its /proc/PID/status and /proc/PID/smaps_rollup, in MiB. */
export function parseMemory(status: string, rollup: string): Memory {
  const kb = (text: string, key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`no ${key} line in /proc/PID/${text === status ? 'status' : 'smaps_rollup'}`);
    return Number(m[1]) / 1024;
  };
  return {
    rssMiB: kb(status, 'VmRSS'),
    anonMiB: kb(status, 'RssAnon'),
    fileMiB: kb(status, 'RssFile'),
    peakMiB: kb(status, 'VmHWM'),
    pssMiB: kb(rollup, 'Pss'),
    pssAnonMiB: kb(rollup, 'Pss_Anon'),
  };
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface ArchResult {
  arch: string;
  emulated: boolean;
  binaryMiB: number;
  binaryXzMiB: number;
  stockNodeMiB?: number;
  stockNodeXzMiB?: number;
  addedMiB?: number;
  addedXzMiB?: number;
  nodeVersion: string;
  helloMs: number[];
  welcomeMs: number[];
  helloMedianMs: number;
  welcomeMedianMs: number;
  /** With --warm: starts with the binary in the page cache. */
  warmHelloMs: number[];
  warmWelcomeMs: number[];
  warmHelloMedianMs: number;
  memory?: Memory;
  memoryNote?: string;
}

export const f1 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(1));
export const f2 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(2));

/** What misses a target, one line each (x64 only: arm64 runs under emulation). */
export function missedTargets(results: readonly ArchResult[]): string[] {
  const out: string[] = [];
  for (const r of results) {
    if (r.addedMiB !== undefined && r.addedMiB > TARGETS.addedMiB) out.push(`${r.arch}: the agent adds ${f1(r.addedMiB)} MiB to the stock node binary (target ${TARGETS.addedMiB})`);
    if (r.emulated) continue;
    if (r.memory && r.memory.rssMiB > TARGETS.idleRssMiB) out.push(`${r.arch}: idle RSS ${f1(r.memory.rssMiB)} MiB (target ${TARGETS.idleRssMiB})`);
    if (r.memory && r.memory.anonMiB > TARGETS.anonMiB) out.push(`${r.arch}: anonymous memory ${f1(r.memory.anonMiB)} MiB (target ${TARGETS.anonMiB})`);
    if (r.helloMedianMs > TARGETS.startMs) out.push(`${r.arch}: start to first heartbeat ${r.helloMedianMs.toFixed(0)} ms (target ${TARGETS.startMs})`);
  }
  return out;
}

/** The time in the agent's JSON log line of its Welcome, once it is there. */
export function welcomeTime(logs: string): number | undefined {
  for (const line of logs.split('\n')) {
    if (!line.includes('connected to the controller')) continue;
    try {
      const e = JSON.parse(line) as { ts?: string; msg?: string };
      if (e.msg === 'connected to the controller' && e.ts) return Date.parse(e.ts);
    } catch {}
  }
  return undefined;
}

