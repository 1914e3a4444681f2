#!/usr/bin/env node
// Agent footprint: `npm run bench:agent-footprint -- [flags]` (bench/README.md "Agent footprint").
// Uses the agent single executables that scripts/build-agent.mjs made (it builds nothing) and one
// real controller process on a fresh database. Per architecture it prints:
//   - size of the binary, raw and `xz -6`, against the stock Node binary it was made from;
//   - start to first heartbeat: from spawning `ibex-agent run` until the controller stamped the
//     device's Hello (`device.connectedAt`, the controller's clock at the Hello: the first sign
//     of life it records, and what makes the device online), and until the agent logged the
//     Welcome (its "connected to the controller" line); median of --runs starts;
//   - memory of `ibex-agent run` connected and idle for --idle-s: VmRSS, RssAnon, RssFile (from
//     /proc/PID/status) and Pss (/proc/PID/smaps_rollup).
// Before each start the binary's pages are dropped from the page cache (sync, then
// posix_fadvise DONTNEED through `dd iflag=nocache`), as on a device after boot: a binary that was
// just written sits in the page cache in large folios, and mapping those adds about 16 MiB of
// RssFile that a device never shows.
// arm64 runs under qemu-user (qemu-aarch64-static): its size and start time are reported, its
// memory is qemu's and is not.
// Exit status: 0 every target met, 1 a target missed (the lines after TARGETS say which),
// 2 bad flags, 3 the run failed.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { Cleanup } from './cleanup.js';
import { createEnrollmentToken, revokeEnrollmentToken } from './fleet.js';
import { SpawnedController } from './spawned-controller.js';
import { type ArchResult, f1, f2, type Flags, median, missedTargets, parseFlags, parseMemory, TARGETS, welcomeTime } from './agent-footprint-report.js';

const repo = process.env['IBEX_REPO'] ?? fileURLToPath(new URL('../../', import.meta.url));
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';
const MiB = 1024 * 1024;
function qemuAvailable(): boolean {
  return spawnSync('qemu-aarch64-static', ['--version'], { stdio: 'ignore' }).status === 0 && existsSync(join(ARM64_SYSROOT, 'lib', 'ld-linux-aarch64.so.1'));
}

/** Drops a file's pages from the page cache (clean pages only, hence the fsync first). */
function dropFromPageCache(file: string): void {
  execFileSync('sync', [file]);
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/** Size of `xz -6` of a file, cached next to it as FILE.xz while newer than the file. */
function xzSize(file: string, cacheDir?: string): number {
  const out = cacheDir ? join(cacheDir, 'node.xz') : `${file}.xz`;
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(file).mtimeMs) {
    process.stderr.write(`compressing ${file} (xz -6)...\n`);
    const fd = openSync(`${out}.tmp`, 'w');
    try {
      const r = spawnSync('xz', ['-T0', '-6', '-c', file], { stdio: ['ignore', fd, 'pipe'] });
      if (r.status !== 0) throw new Error(`xz ${file} failed: ${r.stderr?.toString() || r.error?.message}`);
    } finally {
      closeSync(fd);
    }
    execFileSync('mv', ['-f', `${out}.tmp`, out]);
  }
  return statSync(out).size;
}

interface Launch {
  cmd: string;
  prefix: string[];
}

class FootprintRun {
  private readonly cleanup = new Cleanup((l) => process.stderr.write(`${l}\n`));
  private readonly tag = randomBytes(4).toString('hex');

  constructor(
    private readonly flags: Flags,
    private readonly say: (line: string) => void,
  ) {}

  async run(): Promise<ArchResult[]> {
    process.on('SIGINT', () => void this.cleanup.run().finally(() => process.exit(130)));
    const bundle = join(repo, 'dist', 'agent', 'ibex-agent.cjs');
    const bins = this.flags.archs.map((arch) => ({ arch, bin: join(repo, 'dist', 'agent', `ibex-agent-linux-${arch}`) }));
    for (const { arch, bin } of bins) if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npm run build:agent -- --arch ${arch}\` first`);
    try {
      // A port that freePort found free can be taken before the controller binds it (a load
      // test elsewhere on the machine using many ephemeral ports): a few tries.
      let t: Awaited<ReturnType<SpawnedController['start']>> | undefined;
      for (let attempt = 1; !t; attempt++) {
        const ctl = new SpawnedController(
          {
            databaseServer: process.env['IBEX_BENCH_DATABASE_SERVER'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
            redisUrl: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
            heartbeatMs: 15_000, // the controller's default
            env: { IBEX_LOG_LEVEL: 'warn' },
            ...(this.flags.log ? { logFile: this.flags.log } : {}),
          },
          this.cleanup,
        );
        try {
          t = await ctl.start();
        } catch (err) {
          if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
          this.say(`controller port taken meanwhile (${attempt}); trying other ports`);
        }
      }
      const db = new pg.Client({ connectionString: t.databaseUrl });
      await db.connect();
      this.cleanup.add('close the database connection', () => db.end());
      const token = await createEnrollmentToken(t.api, t.token, bins.length, 'agent footprint bench');
      this.cleanup.add('revoke the enrollment token', () => revokeEnrollmentToken(t.api, t.token, token.id));
      if (existsSync(bundle)) this.say(`bundle dist/agent/ibex-agent.cjs: ${(statSync(bundle).size / 1024).toFixed(0)} KiB`);
      const results: ArchResult[] = [];
      for (const { arch, bin } of bins) results.push(await this.measure(arch, bin, t.grpc, token.token, db));
      return results;
    } finally {
      await this.cleanup.run();
    }
  }

  private launch(arch: string, bin: string): Launch {
    const native = arch === process.arch;
    if (native) return { cmd: bin, prefix: [] };
    if (arch === 'arm64' && qemuAvailable()) return { cmd: 'qemu-aarch64-static', prefix: ['-L', ARM64_SYSROOT, bin] };
    throw new Error(`cannot run ${arch} binaries here (for arm64: Debian's qemu-user-static and libc6-arm64-cross, scripts/setup-system.sh)`);
  }

  private async measure(arch: 'x64' | 'arm64', bin: string, grpc: string, token: string, db: pg.Client): Promise<ArchResult> {
    const how = this.launch(arch, bin);
    const emulated = how.prefix.length > 0;
    const runs = this.flags.runs ?? (emulated ? 3 : 7);
    const root = mkdtempSync(join(tmpdir(), `ibex-footprint-${arch}-`));
    this.cleanup.add(`remove ${root}`, async () => rmSync(root, { recursive: true, force: true }));
    const name = `footprint-${this.tag}-${arch}`;
    const versionOut = execFileSync(how.cmd, [...how.prefix, 'version'], { encoding: 'utf8', timeout: 120_000 });
    const nodeVersion = /node (\d+\.\d+\.\d+)/.exec(versionOut)?.[1] ?? '?';

    this.say(`${arch}${emulated ? ' (under qemu-user)' : ''}: sizes`);
    const result: ArchResult = {
      arch,
      emulated,
      nodeVersion,
      binaryMiB: statSync(bin).size / MiB,
      binaryXzMiB: this.flags.xz ? xzSize(bin) / MiB : NaN,
      helloMs: [],
      welcomeMs: [],
      helloMedianMs: NaN,
      welcomeMedianMs: NaN,
      warmHelloMs: [],
      warmWelcomeMs: [],
      warmHelloMedianMs: NaN,
    };
    const stockDir = join(repo, '.cache', 'node', `${nodeVersion}-${arch}`);
    const stock = join(stockDir, 'node');
    if (existsSync(stock)) {
      result.stockNodeMiB = statSync(stock).size / MiB;
      result.stockNodeXzMiB = this.flags.xz ? xzSize(stock, stockDir) / MiB : NaN;
      result.addedMiB = result.binaryMiB - result.stockNodeMiB;
      result.addedXzMiB = result.binaryXzMiB - result.stockNodeXzMiB;
    }

    const enroll = spawnSync(how.cmd, [...how.prefix, 'enroll', '--controller', `grpc://${grpc}`, '--token', token, '--name', name, '--root', root], { encoding: 'utf8', timeout: 120_000 });
    if (enroll.status !== 0) throw new Error(`ibex-agent enroll failed (exit ${enroll.status}): ${enroll.stderr}`);

    const timeoutMs = emulated ? 120_000 : 30_000;
    const starts: Array<{ cold: boolean; idle: boolean }> = [];
    for (let i = 0; i < runs; i++) starts.push({ cold: true, idle: i === runs - 1 });
    if (this.flags.warm) for (let i = 0; i < runs; i++) starts.push({ cold: false, idle: false });
    for (const [i, s] of starts.entries()) {
      const before = await connectedAt(db, name);
      if (s.cold) dropFromPageCache(bin);
      const t0 = Date.now();
      const child = spawn(how.cmd, [...how.prefix, 'run', '--root', root, '--log-format', 'json', '--log-level', 'debug'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const stop = () => stopChild(child);
      this.cleanup.add(`stop ibex-agent run (pid ${child.pid})`, stop);
      let logs = '';
      child.stdout!.on('data', (d) => (logs += d));
      child.stderr!.on('data', (d) => (logs += d));
      try {
        const welcomeAt = await waitFor(timeoutMs, () => {
          if (child.exitCode !== null || child.signalCode !== null) throw new Error(`ibex-agent run exited (${child.exitCode ?? child.signalCode}):\n${logs.slice(-4000)}`);
          return welcomeTime(logs);
        });
        const hello = await connectedAt(db, name);
        if (!hello || (before && hello <= before)) throw new Error('the controller has no new connectedAt for the device after its Welcome');
        (s.cold ? result.helloMs : result.warmHelloMs).push(hello - t0);
        (s.cold ? result.welcomeMs : result.warmWelcomeMs).push(welcomeAt - t0);
        this.say(`  start ${i + 1}/${starts.length} (${s.cold ? 'cold' : 'warm'} page cache): Hello stamped by the controller after ${hello - t0} ms, Welcome logged after ${welcomeAt - t0} ms`);
        if (s.idle) {
          await sleep(this.flags.idleS * 1000);
          if (child.exitCode !== null) throw new Error(`ibex-agent run exited while idle:\n${logs.slice(-4000)}`);
          if (!emulated) result.memory = parseMemory(readFileSync(`/proc/${child.pid}/status`, 'utf8'), readFileSync(`/proc/${child.pid}/smaps_rollup`, 'utf8'));
          else result.memoryNote = 'not measured: under qemu-user the process is qemu, whose memory is not the agent\'s';
          const problems = logs.split('\n').filter((l) => /"level":"(warn|error)"/.test(l));
          if (problems.length) this.say(`  warnings of the idle agent: ${problems.slice(-3).join(' | ')}`);
        }
      } finally {
        await stop();
        if (this.flags.agentLog) appendFileSync(this.flags.agentLog, `# ${arch} start ${i + 1} (${s.cold ? 'cold' : 'warm'}), spawned at ${new Date(t0).toISOString()}\n${logs}`);
      }
    }
    result.helloMedianMs = median(result.helloMs);
    result.welcomeMedianMs = median(result.welcomeMs);
    result.warmHelloMedianMs = median(result.warmHelloMs);
    return result;
  }
}

async function connectedAt(db: pg.Client, name: string): Promise<number | undefined> {
  const r = await db.query<{ connectedAt: Date | null }>('SELECT "connectedAt" FROM device WHERE name = $1', [name]);
  return r.rows[0]?.connectedAt?.getTime();
}

async function waitFor<T>(timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`no Welcome from the agent within ${timeoutMs} ms`);
    await sleep(5);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await gone;
  clearTimeout(killer);
}

function print(results: readonly ArchResult[], idleS: number, say: (l: string) => void): void {
  for (const r of results) {
    say('');
    say(`ibex-agent-linux-${r.arch} (node ${r.nodeVersion}${r.emulated ? ', run under qemu-user' : ''})`);
    say(`  binary:          ${f1(r.binaryMiB)} MiB, xz ${f1(r.binaryXzMiB)} MiB`);
    say(`  stock node:      ${f1(r.stockNodeMiB)} MiB, xz ${f1(r.stockNodeXzMiB)} MiB`);
    say(`  agent adds:      ${f2(r.addedMiB)} MiB, xz ${f2(r.addedXzMiB)} MiB`);
    say(`  start to Hello:  cold page cache, median ${r.helloMedianMs.toFixed(0)} ms (${r.helloMs.join(', ')} ms; stamped by the controller)`);
    say(`  start to Welcome: median ${r.welcomeMedianMs.toFixed(0)} ms (${r.welcomeMs.join(', ')} ms; the agent's log line)`);
    if (r.warmHelloMs.length) say(`  warm start to Hello: median ${r.warmHelloMedianMs.toFixed(0)} ms (${r.warmHelloMs.join(', ')} ms; binary in the page cache)`);
    if (r.memory) {
      const m = r.memory;
      say(`  idle ${idleS} s, connected: RSS ${f1(m.rssMiB)} MiB (anon ${f1(m.anonMiB)}, file ${f1(m.fileMiB)}), PSS ${f1(m.pssMiB)} MiB (anon ${f1(m.pssAnonMiB)}), peak RSS ${f1(m.peakMiB)} MiB`);
    } else say(`  memory: ${r.memoryNote ?? 'n/a'}`);
  }
}

async function main(): Promise<number> {
  let flags: Flags;
  try {
    flags = parseFlags(process.argv.slice(2), qemuAvailable());
  } catch (err) {
    process.stderr.write(`bench:agent-footprint: ${(err as Error).message}\n`);
    return 2;
  }
  const say = (line: string) => (flags.json ? process.stderr : process.stdout).write(`${line}\n`);
  if (!flags.archs.includes('arm64') && !qemuAvailable()) say('arm64: skipped (no qemu-aarch64-static with an arm64 sysroot here; scripts/setup-system.sh installs them)');
  let results: ArchResult[];
  try {
    results = await new FootprintRun(flags, say).run();
  } catch (err) {
    process.stderr.write(`bench:agent-footprint: ${(err as Error).stack ?? err}\n`);
    return 3;
  }
  if (flags.json) process.stdout.write(`${JSON.stringify({ idleS: flags.idleS, targets: TARGETS, results }, null, 2)}\n`);
  else print(results, flags.idleS, say);
  const missed = missedTargets(results);
  say('');
  if (missed.length) {
    say('TARGETS NOT MET');
    for (const m of missed) say(`  ${m}`);
    return 1;
  }
  say(`targets met: idle RSS <= ${TARGETS.idleRssMiB} MiB, anon <= ${TARGETS.anonMiB} MiB, start <= ${TARGETS.startMs} ms, adds <= ${TARGETS.addedMiB} MiB`);
  return 0;
}

process.exitCode = await main();
