// Artifact store throughput and memory: upload and download of a 1 GiB artifact over loopback,
// side by side with curl fetching the same file from a plain static server (python3 -m
// http.server) in the same run, and the controller's peak RSS (VmHWM) across a 2 GiB upload.
//
//   npm run bench:artifacts -- [--size-mib 1024] [--big-mib 2048] [--runs 3] [--max-rss-mb 300] [--max-ratio 1.5]
//
// Every transfer is made by curl (the same client for the controller and the static server), to
// /dev/null for downloads; the agent's own fetcher is timed too (it also hashes the file). Exit
// status 0 when the bars are met (download within --max-ratio of the static server, peak RSS
// under --max-rss-mb), 1 when not, 3 when the run failed. Files, database, Redis keys and
// processes are removed at the end, also on failure or Ctrl-C.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@ibex/migrate';
import { Cleanup } from './cleanup.js';
import { ProcessMonitor } from './process-stats.js';
import { SpawnedController } from './spawned-controller.js';

const repo = process.env['IBEX_REPO'] ?? fileURLToPath(new URL('../../', import.meta.url));

function flag(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`--${name} needs a positive number`);
    process.exit(2);
  }
  return v;
}
const sizeMiB = flag('size-mib', 1024);
const bigMiB = flag('big-mib', 2048);
const runs = flag('runs', 3);
const maxRssMb = flag('max-rss-mb', 300);
const maxRatio = flag('max-ratio', 1.5);
const MIB = 1024 * 1024;

const log = (line: string) => console.error(line);
const cleanup = new Cleanup(log);
process.on('SIGINT', () => void cleanup.run().then(() => process.exit(130)));

function curl(args: string[]): Promise<{ seconds: number; code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--fail-with-body', '-w', '\n%{time_total} %{http_code}', ...args], { maxBuffer: 16 * MIB }, (err, stdout, stderr) => {
      const lines = stdout.trim().split('\n');
      const [t, code] = (lines.pop() ?? '').split(' ');
      if (err && !code) throw new Error(`curl ${args.join(' ')} failed: ${stderr}`);
      resolve({ seconds: Number(t), code: Number(code), out: lines.join('\n') });
    });
  });
}

async function makeFile(path: string, mib: number): Promise<string> {
  const h = createHash('sha256');
  const out = createWriteStream(path);
  for (let i = 0; i < mib; i++) {
    const b = randomBytes(MIB);
    h.update(b);
    if (!out.write(b)) await new Promise<void>((ok) => out.once('drain', () => ok()));
  }
  await new Promise<void>((ok, ko) => out.end((err?: Error | null) => (err ? ko(err) : ok())));
  return h.digest('hex');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mibs = (mib: number, s: number) => mib / s;

async function main(): Promise<number> {
  const work = await mkdtemp(join(tmpdir(), 'ibex-bench-artifacts-'));
  cleanup.add(`remove ${work}`, () => rm(work, { recursive: true, force: true }));
  const store = join(work, 'store');
  const files = join(work, 'files');
  await import('node:fs/promises').then((fs) => fs.mkdir(files, { recursive: true }));
  log(`writing ${sizeMiB} MiB and ${bigMiB} MiB of random bytes to ${files}`);
  const small = join(files, 'a.bin');
  const smallSha = await makeFile(small, sizeMiB);
  const big = join(files, 'big.bin');
  await makeFile(big, bigMiB);

  const ctl = new SpawnedController(
    { databaseServer: process.env['DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres', redisUrl: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379', heartbeatMs: 15_000, env: { IBEX_ARTIFACTS_DIR: store, IBEX_ARTIFACT_MAX_BYTES: String(16 * 1024 ** 3), IBEX_LOG_LEVEL: 'warn' } },
    cleanup,
  );
  const target = await ctl.start();
  const mon = new ProcessMonitor(target.pid!);
  const rssAtStart = mon.sample()!.rssMb;

  const staticPort = await freePort();
  const py: ChildProcess = spawn('python3', ['-m', 'http.server', String(staticPort), '--bind', '127.0.0.1', '--directory', files], { stdio: 'ignore' });
  cleanup.add('stop the static server', async () => void py.kill('SIGTERM'));
  for (let i = 0; i < 50; i++) {
    if ((await fetch(`http://127.0.0.1:${staticPort}/`).catch(() => undefined))?.ok) break;
    await new Promise<void>((ok) => setTimeout(ok, 100));
  }
  const auth = ['-H', `authorization: Bearer ${target.token}`];

  // Upload, then download by the controller and by the static server, interleaved so both see the same machine load.
  const up: number[] = [];
  const down: number[] = [];
  const plain: number[] = [];
  const fetcher: number[] = [];
  // The agent's fetcher, as built (bench does not compile agent sources).
  const { fetchArtifact } = (await import(join(repo, 'apps/agent/dist/artifacts/artifact-fetcher.js'))) as {
    fetchArtifact(o: { url: string; headers: Record<string, string>; sha256: string; dest: string; size: number }): Promise<unknown>;
  };
  let id = '';
  for (let r = 0; r < runs; r++) {
    const u = await curl(['-X', 'POST', '-T', small, '-H', 'content-type: application/octet-stream', '-H', 'expect:', ...auth, `${target.api}/api/v1/artifacts?name=bench&version=${r}&sha256=${smallSha}`]);
    if (u.code !== 201) throw new Error(`upload answered ${u.code}: ${u.out}`);
    up.push(u.seconds);
    id = (JSON.parse(u.out) as { id: string }).id;
    const d = await curl(['-o', '/dev/null', ...auth, `${target.api}/api/v1/artifacts/${id}/download`]);
    if (d.code !== 200) throw new Error(`download answered ${d.code}`);
    down.push(d.seconds);
    const p = await curl(['-o', '/dev/null', `http://127.0.0.1:${staticPort}/a.bin`]);
    plain.push(p.seconds);
    const t0 = performance.now();
    const dest = join(work, `fetched-${r}`);
    await fetchArtifact({ url: `${target.api}/api/v1/artifacts/${id}/download`, headers: { authorization: `Bearer ${target.token}` }, sha256: smallSha, dest, size: sizeMiB * MIB });
    fetcher.push((performance.now() - t0) / 1000);
    await rm(dest, { force: true });
    log(`run ${r + 1}/${runs}: upload ${u.seconds.toFixed(2)} s, download ${d.seconds.toFixed(2)} s, static server ${p.seconds.toFixed(2)} s, agent fetcher ${fetcher.at(-1)!.toFixed(2)} s`);
  }
  const peakAfterSmall = mon.sample()!.peakRssMb;

  log(`uploading the ${bigMiB} MiB file`);
  const b = await curl(['-X', 'POST', '-T', big, '-H', 'content-type: application/octet-stream', '-H', 'expect:', ...auth, `${target.api}/api/v1/artifacts?name=bench-big&version=1`]);
  if (b.code !== 201) throw new Error(`big upload answered ${b.code}: ${b.out}`);
  const peak = mon.sample()!.peakRssMb;

  const ratio = median(down) / median(plain);
  const rows = [
    ['upload (curl -T to the controller)', median(up)],
    ['download (curl from the controller)', median(down)],
    ['download (curl from python3 -m http.server)', median(plain)],
    ['download (agent fetcher, incl. sha256 check)', median(fetcher)],
  ] as const;
  console.log(`\nartifact transfers of ${sizeMiB} MiB over loopback, median of ${runs} runs`);
  for (const [what, s] of rows) console.log(`  ${what.padEnd(48)} ${s.toFixed(2).padStart(6)} s  ${mibs(sizeMiB, s).toFixed(0).padStart(5)} MiB/s`);
  console.log(`  controller download / static server: ${ratio.toFixed(2)}x (bar: ${maxRatio}x)`);
  console.log(`  ${bigMiB} MiB upload: ${b.seconds.toFixed(2)} s (${mibs(bigMiB, b.seconds).toFixed(0)} MiB/s)`);
  console.log(`  controller RSS: ${rssAtStart.toFixed(0)} MB at start, peak ${peakAfterSmall.toFixed(0)} MB after the ${sizeMiB} MiB runs, peak ${peak.toFixed(0)} MB after the ${bigMiB} MiB upload (bar: ${maxRssMb} MB)`);
  const ok = ratio <= maxRatio && peak < maxRssMb;
  console.log(ok ? 'bars met' : 'BAR NOT MET');
  return ok ? 0 : 1;
}

let code = 3;
try {
  code = await main();
} catch (err) {
  log(`bench failed: ${(err as Error).stack ?? err}`);
} finally {
  await cleanup.run();
}
process.exit(code);
