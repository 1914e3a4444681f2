#!/usr/bin/env node
// Reports what the agent costs a device, for each binary in dist/agent (build-agent.mjs makes them):
//   size     the single executable on disk
//   xz       its .xz (made with `xz -T0 -6 -k` when missing or older than the binary)
//   version  peak RSS of `ibex-agent version`: start-up alone
//   run      RSS of `ibex-agent run` after it has idled for a while against a controller that
//            does not answer (it keeps retrying with backoff), with a scratch root and data
//            directory holding a made-up credential (`run` needs one to start)
// The binary's pages are dropped from the page cache before each measurement (as after a boot):
// a binary that was just built sits in the page cache in large folios, and mapping those shows
// about 16 MiB more RssFile than a device would. bench/agent-footprint (npm run
// bench:agent-footprint) measures the same against a real controller, with PSS and start times.
// arm64 runs under qemu-aarch64-static, so its RSS is qemu's plus the agent's: not what an arm64
// device would show.
//
//   node scripts/agent-size.mjs [--arch x64,arm64] [--wait SECONDS] [--run-args "run ..."] [--json]
//
// --run-args replaces the arguments of the idle measurement ({data} and {root} become the scratch
// directories); the default is `run --root {root} --data-dir {data}`.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repo } from './lib/prepare.mjs';

const argv = process.argv.slice(2);
function option(name, fallback) {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const value = argv[i + 1];
  if (value === undefined) {
    console.error(`agent-size: ${name} needs a value`);
    process.exit(2);
  }
  return value;
}
const archs = option('--arch', 'x64,arm64').split(',');
const waitSec = Number(option('--wait', '3'));
const runArgsTemplate = option('--run-args', 'run --root {root} --data-dir {data}').split(/\s+/).filter(Boolean);
// Port 9 on loopback: nothing listens, so the agent keeps reconnecting with backoff.
const UNANSWERED_CONTROLLER = 'grpc://127.0.0.1:9';
const asJson = argv.includes('--json');
if (!Number.isFinite(waitSec) || waitSec <= 0) {
  console.error('agent-size: --wait must be a positive number of seconds');
  process.exit(2);
}
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';

const mib = (bytes) => (bytes === undefined ? 'n/a' : `${(bytes / 1048576).toFixed(1)} MiB`);

function onPath(name) {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', name], { encoding: 'utf8' }).status === 0;
}

/** How to run a binary of an architecture on this machine: natively, or under qemu-user. */
function launcher(arch, bin) {
  const native = (arch === 'x64' && process.arch === 'x64') || (arch === 'arm64' && process.arch === 'arm64');
  if (native) return { cmd: bin, prefix: [], note: '' };
  if (arch === 'arm64' && onPath('qemu-aarch64-static')) {
    return { cmd: 'qemu-aarch64-static', prefix: ['-L', ARM64_SYSROOT, bin], note: 'under qemu' };
  }
  return undefined;
}

function ensureXz(bin) {
  const xz = `${bin}.xz`;
  if (!existsSync(xz) || statSync(xz).mtimeMs < statSync(bin).mtimeMs) {
    if (!onPath('xz')) return { error: 'xz is not installed (Debian package xz-utils)' };
    process.stderr.write(`agent-size: compressing ${bin} (xz -T0 -6)...\n`);
    const r = spawnSync('xz', ['-T0', '-6', '-k', '-f', bin], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    if (r.status !== 0) return { error: `xz failed: ${r.stderr.trim()}` };
  }
  return { bytes: statSync(xz).size };
}

/** Peak RSS of a short command, from the kernel's accounting of a waited-for child (GNU time or Python). */
function peakRss(cmd, args) {
  if (existsSync('/usr/bin/time')) {
    const r = spawnSync('/usr/bin/time', ['-f', 'IBEX_MAXRSS_KB=%M', cmd, ...args], { encoding: 'utf8' });
    const m = /IBEX_MAXRSS_KB=(\d+)/.exec(r.stderr);
    if (m) return { bytes: Number(m[1]) * 1024, exit: r.status, out: r.stdout.trim() };
  }
  if (onPath('python3')) {
    const py = 'import resource,subprocess,sys\nr=subprocess.run(sys.argv[1:],capture_output=True,text=True)\nprint(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);print(r.returncode);print(r.stdout.strip())';
    const r = spawnSync('python3', ['-c', py, cmd, ...args], { encoding: 'utf8' });
    const [kb, code, ...out] = r.stdout.split('\n');
    if (r.status === 0) return { bytes: Number(kb) * 1024, exit: Number(code), out: out.join('\n').trim() };
  }
  return { error: 'needs GNU time (/usr/bin/time) or python3 to read a child\'s peak RSS' };
}

function status(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Drops a file's clean pages from the page cache (GNU dd's iflag=nocache: posix_fadvise DONTNEED). */
function dropFromPageCache(file) {
  spawnSync('sync', [file]);
  spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/** Starts `run`, lets it idle, reads its RSS, stops it. Says why when this agent cannot `run` yet. */
async function idleRss(how) {
  const scratch = mkdtempSync(join(tmpdir(), 'ibex-agent-size-'));
  const data = join(scratch, 'data');
  const root = join(scratch, 'root');
  mkdirSync(data, { mode: 0o700 });
  mkdirSync(root);
  // The shape of apps/agent/src/journal/credential.ts; nothing checks it but the controller.
  writeFileSync(
    join(data, 'credential.json'),
    JSON.stringify({ deviceId: 'size-probe', deviceName: 'size-probe', credential: 'ibxd_sizeprobe', controller: UNANSWERED_CONTROLLER, labels: {}, enrolledAtMs: Date.now() }),
    { mode: 0o600 },
  );
  dropFromPageCache(how.prefix.at(-1) ?? how.cmd);
  const args = runArgsTemplate.map((a) => a.replaceAll('{data}', data).replaceAll('{root}', root));
  const child = spawn(how.cmd, [...how.prefix, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  try {
    const early = await Promise.race([exited, new Promise((r) => setTimeout(() => r(undefined), waitSec * 1000))]);
    if (early) {
      const first = output.trim().split('\n')[0] ?? '';
      const unsupported = /usage|unknown (command|option|flag)|not supported/i.test(output);
      return {
        error: unsupported
          ? `\`ibex-agent ${args.join(' ')}\` is not supported by this build yet (exit ${early.code}: ${first})`
          : `\`ibex-agent ${args.join(' ')}\` exited after less than ${waitSec}s (exit ${early.code ?? early.signal}: ${first}); pass other --run-args`,
      };
    }
    const { rss, hwm } = status(child.pid);
    return { bytes: rss, peak: hwm, args };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const done = await Promise.race([exited, new Promise((r) => setTimeout(() => r(undefined), 5000))]);
      if (!done) child.kill('SIGKILL');
    }
    rmSync(scratch, { recursive: true, force: true });
  }
}

const rows = [];
for (const arch of archs) {
  const bin = join(repo, 'dist', 'agent', `ibex-agent-linux-${arch}`);
  if (!existsSync(bin)) {
    console.error(`agent-size: ${bin} is missing: run \`node scripts/build-agent.mjs --arch ${arch}\``);
    process.exitCode = 1;
    continue;
  }
  const row = { arch, size: statSync(bin).size, xz: ensureXz(bin) };
  const how = launcher(arch, bin);
  if (!how) {
    row.version = row.run = { error: `cannot run ${arch} binaries here (for arm64 install qemu-user-static)` };
  } else {
    row.note = how.note;
    dropFromPageCache(bin);
    const v = peakRss(how.cmd, [...how.prefix, 'version']);
    row.version = v.exit === 0 || v.error ? v : { ...v, error: `\`version\` exited ${v.exit}` };
    row.run = await idleRss(how);
  }
  rows.push(row);
}

if (asJson) {
  console.log(JSON.stringify(rows, null, 2));
} else {
  for (const r of rows) {
    console.log(`ibex-agent-linux-${r.arch}${r.note ? ` (RSS ${r.note}: qemu's own memory included)` : ''}`);
    console.log(`  size on disk:         ${mib(r.size)}`);
    console.log(`  .xz:                  ${r.xz.error ?? mib(r.xz.bytes)}`);
    console.log(`  \`version\` peak RSS:   ${r.version.error ?? `${mib(r.version.bytes)}  (${r.version.out})`}`);
    console.log(`  \`run\` idle RSS:       ${r.run.error ?? `${mib(r.run.bytes)} after ${waitSec}s (peak ${mib(r.run.peak)})`}`);
  }
}
