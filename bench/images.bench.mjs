#!/usr/bin/env node
// What an image build costs (libs/image, build first: npx tsc -b tsconfig.build.json): the
// BusyBox stand-in root with network and virtio modules, and the same with the agent single
// executable (dist/agent/ibex-agent-linux-x64, npm run build:agent), at gzip levels 9 and 1;
// then the small image booted under qemu (software emulation) to power-off.
//
//   node bench/images.bench.mjs [--runs 3] [--no-boot] [--no-agent]
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const { buildImageToFile, LocalImageSourceResolver } = await import(join(repo, 'libs/image/dist/index.js'));
const { bootImage, findKernel, makeBusyboxRootfs } = await import(join(repo, 'libs/image/dist/testing/index.js'));
const { imageSpecSchema } = await import(join(repo, 'libs/spec/dist/index.js'));

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] ?? 3) || 3;
const agentBin = join(repo, 'dist/agent/ibex-agent-linux-x64');
const work = mkdtempSync(join(tmpdir(), 'ibex-bench-images-'));
const rootfs = makeBusyboxRootfs();
const cleanup = () => {
  rmSync(work, { recursive: true, force: true });
  rmSync(rootfs, { recursive: true, force: true });
};
process.on('SIGINT', () => (cleanup(), process.exit(130)));

try {
  const kernel = findKernel();
  const base = {
    name: 'bench',
    base: { path: rootfs },
    hostname: 'bench-1',
    network: { interfaces: [{ name: 'lo', method: 'loopback' }, { name: 'eth0', method: 'dhcp' }] },
    kernel: { release: kernel.release, modules: ['virtio_pci', 'virtio_net'] },
  };
  const cases = [{ what: 'busybox root + modules', spec: base, level: 9 }];
  if (!args.includes('--no-agent') && existsSync(agentBin)) {
    const agent = { binary: { path: agentBin }, controller: 'grpc://10.0.2.2:50051', enrollmentToken: 'ibxe_benchmark_token' };
    cases.push({ what: 'with the agent (128 MB)', spec: { ...base, agent }, level: 9 }, { what: 'with the agent (128 MB)', spec: { ...base, agent }, level: 1 });
  }
  console.log('| image | gzip | entries | size | build (median of ' + runs + ') |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const c of cases) {
    const times = [];
    let r;
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      r = await buildImageToFile(imageSpecSchema.parse(c.spec), new LocalImageSourceResolver(), join(work, 'img.cpio.gz'), { gzipLevel: c.level });
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    console.log(`| ${c.what} | ${c.level} | ${r.entries} | ${(r.size / 1e6).toFixed(2)} MB | ${(times[Math.floor(times.length / 2)] / 1000).toFixed(2)} s |`);
  }
  if (!args.includes('--no-boot')) {
    await buildImageToFile(imageSpecSchema.parse(base), new LocalImageSourceResolver(), join(work, 'boot.cpio.gz'));
    const b = await bootImage({ vmlinuz: kernel.vmlinuz, initrd: join(work, 'boot.cpio.gz'), timeoutMs: 180_000, until: /reboot: Power down/ });
    console.log(`\nboot to power-off under qemu (TCG), DHCP included: ${(b.ms / 1000).toFixed(1)} s (${b.matched ? 'powered off' : 'DID NOT FINISH'})`);
  }
} finally {
  cleanup();
}
