#!/usr/bin/env node
// How long an upgrade (snapshot + commands in a chroot + read-only + links + switch) and a
// rollback take on a 1 GiB root, on a real btrfs in a loop-device image. Runs the agent's real
// generations code (apps/agent/dist; build first: npx tsc -b apps/agent). As root.
//
//   npm run bench:generations -- [--size-mib 1024] [--runs 5] [--image-mib 4096] [--no-stream]
//
// The root is filled with `--size-mib` of files (1 MiB random files plus 4 KiB files, 8 per MiB),
// laid out the wiki's way by hand and adopted. Everything (mount, loop device, files) is removed
// at the end, also on failure or Ctrl-C.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(repo, 'apps/agent/dist');
const { GenerationsRoot } = await import(join(dist, 'capabilities/generations/generations-root.js'));
const { adopt } = await import(join(dist, 'capabilities/generations/init-adopt.js'));
const { upgrade } = await import(join(dist, 'capabilities/generations/upgrade.js'));
const { rollback } = await import(join(dist, 'capabilities/generations/rollback.js'));
const { gc: collectGarbage } = await import(join(dist, 'capabilities/generations/gc.js'));
const { NodeSystemAdapter } = await import(join(dist, 'system/node-system-adapter.js'));
const { silentLogger } = await import(join(dist, 'common/log.js'));
// The loop-device btrfs the tests use (image, losetup, mkfs.btrfs, mount, /proc link; destroy() undoes it).
const { createLoopBtrfs } = await import(join(dist, 'testing/btrfs-volume.js'));

function flag(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) {
    console.error(`--${name} needs a positive integer`);
    process.exit(2);
  }
  return v;
}
const sizeMiB = flag('size-mib', 1024);
const runs = flag('runs', 5);
const imageMiB = flag('image-mib', Math.max(3 * sizeMiB + 512, 1024));
const withStream = !process.argv.includes('--no-stream');
if (process.getuid?.() !== 0) {
  console.error('bench:generations needs root (loop devices, mount, btrfs)');
  process.exit(2);
}

const sh = (argv) => execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
let vol;
function cleanup() {
  vol?.destroy();
  vol = undefined;
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor((s.length - 1) / 2)], min: s[0], max: s.at(-1) };
};
const fmt = (x) => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(0)} ms`);

try {
  vol = createLoopBtrfs({ sizeMiB: imageMiB, prefix: 'ibex-genbench' });
  const { root, host } = vol;

  // The wiki's layout by hand, with a first generation holding `sizeMiB` of files.
  const gen = '20250101000000benchAAA';
  const links = '20250101000000benchLLL';
  for (const d of ['next', 'commons', 'snapshots', 'links', `snapshots/${gen}`, `links/${links}`]) mkdirSync(join(host, d));
  const g = join(host, 'snapshots', gen, '@');
  sh(['btrfs', 'subvolume', 'create', g]);
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'usr/share/data']) mkdirSync(join(g, d), { recursive: true });
  copyFileSync('/bin/busybox', join(g, 'bin/busybox'));
  sh(['chmod', '0755', join(g, 'bin/busybox')]);
  const t0 = process.hrtime.bigint();
  const big = randomBytes(1 << 20);
  const small = randomBytes(4096);
  let files = 0;
  for (let i = 0; i < sizeMiB; i++) {
    const dir = join(g, 'usr/share/data', String(Math.floor(i / 64)));
    if (i % 64 === 0) mkdirSync(dir);
    big[0] = i & 0xff;
    big[1] = i >> 8;
    writeFileSync(join(dir, `f${i}.bin`), big);
    for (let j = 0; j < 8; j++) writeFileSync(join(dir, `s${i}-${j}.txt`), small);
    files += 9;
  }
  sh(['sync', '-f', g]);
  const fillMs = ms(t0);
  sh(['btrfs', 'property', 'set', '-ts', g, 'ro', 'true']);
  for (const i of [0, 1, 2, 3]) symlinkSync(`../../snapshots/${gen}`, join(host, 'links', links, String(i)));
  symlinkSync(`./links/${links}`, join(host, 'current'));
  const used = sh(['du', '-sm', '--apparent-size', g]).split('\t')[0];

  const m = new GenerationsRoot({ root, sys: new NodeSystemAdapter(), log: silentLogger, selfCommand: [process.execPath, join(dist, 'main.js')] });
  await adopt(m, { volume: '/vol/root' });

  // Upgrades: phases from the progress messages the job would report.
  const phases = { snapshot: [], commands: [], readonly: [], 'links+switch': [], total: [] };
  for (let r = 0; r < runs; r++) {
    const marks = [];
    const start = process.hrtime.bigint();
    await upgrade(
      m,
      { from: { kind: 'commands' }, commands: [['/bin/busybox', 'touch', `/etc/upgraded-${r}`], ['/bin/busybox', 'cp', '/proc/version', '/etc/kernel']], trial: false },
      (pc, msg) => marks.push([msg, ms(start)]),
    );
    const total = ms(start);
    const at = (re) => marks.find(([msg]) => re.test(msg))?.[1];
    const tCmd = at(/^running /);
    const tRo = at(/read-only/);
    const tSw = at(/^switching/);
    phases.snapshot.push(tCmd);
    phases.commands.push(tRo - tCmd);
    phases.readonly.push(tSw - tRo);
    phases['links+switch'].push(total - tSw);
    phases.total.push(total);
  }
  const rollbacks = [];
  for (let r = 0; r < runs; r++) {
    const start = process.hrtime.bigint();
    await rollback(m, { reason: 'bench' });
    rollbacks.push(ms(start));
  }
  const gcStart = process.hrtime.bigint();
  const gc = await collectGarbage(m);
  const gcMs = ms(gcStart);

  let streamRow;
  if (withStream) {
    const cur = (await m.inventory()).current;
    const stream = join(root, 'image.btrfs');
    const s0 = process.hrtime.bigint();
    sh(['btrfs', 'send', '-q', '-f', stream, join(host, 'snapshots', cur, '@')]);
    const sendMs = ms(s0);
    const sha = sh(['sha256sum', stream]).split(' ')[0];
    const u0 = process.hrtime.bigint();
    await upgrade(m, { from: { kind: 'sendStream', path: '/image.btrfs', sha256: sha }, commands: [], trial: false });
    streamRow = { sendMs, upgradeMs: ms(u0) };
  }

  console.log(`\ngenerations on btrfs (loop device, ${imageMiB} MiB image): root of ${used} MiB in ${files} files (filled in ${fmt(fillMs)}), ${runs} runs each\n`);
  const rows = [
    ['upgrade: snapshot current/0/@', stats(phases.snapshot)],
    ['upgrade: 2 commands in the chroot (unshare + mounts)', stats(phases.commands)],
    ['upgrade: set read-only', stats(phases.readonly)],
    ['upgrade: links + switch (rename + fsync) + state', stats(phases['links+switch'])],
    ['upgrade: total', stats(phases.total)],
    ['rollback to the previous generation', stats(rollbacks)],
  ];
  const w = Math.max(...rows.map(([n]) => n.length));
  console.log(`| ${'step'.padEnd(w)} | median   | min      | max      |`);
  console.log(`| ${'-'.repeat(w)} | -------- | -------- | -------- |`);
  for (const [n, s] of rows) console.log(`| ${n.padEnd(w)} | ${fmt(s.median).padEnd(8)} | ${fmt(s.min).padEnd(8)} | ${fmt(s.max).padEnd(8)} |`);
  console.log(`\ngc: deleted ${gc.deleted.length} generation(s) in ${fmt(gcMs)}`);
  if (streamRow) console.log(`send stream of the ${used} MiB root: btrfs send ${fmt(streamRow.sendMs)}; upgrade from it (sha256 + receive + snapshot + switch) ${fmt(streamRow.upgradeMs)}`);
} catch (err) {
  console.error(`bench:generations failed: ${err.stack ?? err}`);
  process.exitCode = 3;
} finally {
  cleanup();
}
