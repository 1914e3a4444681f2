// The stretch goal of issue 13: a VM booted from a built image runs the built agent binary, which
// enrolls with a real controller process through QEMU's user-mode network (10.0.2.2 is the host)
// with the one-time token in the image, and shows up online.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildImageToFile, LocalImageSourceResolver } from '@ibex/image';
import { bootImage, findKernel, makeBusyboxRootfs } from '@ibex/image/testing';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { imageSpecSchema } from '@ibex/spec';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { ControllerProcess } from './helpers/controller-process.js';
import { waitFor } from './helpers/exec.js';
import { agentBinary } from './helpers/repo.js';

/**
 * The agent is a glibc Node executable; the BusyBox stand-in root has no libc, so the test puts
 * the host's loader and the libraries `ldd` names into the image as `files` (on real Alpine: gcompat).
 */
function glibcFiles(binary: string) {
  const libs = execFileSync('ldd', [binary], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /(\/\S+) \(0x/.exec(l)?.[1])
    .filter((p): p is string => !!p);
  return libs.map((p) => ({ path: p, source: { path: realpathSync(p) }, mode: '0755' }));
}

describe('a VM from a built image joins the fleet', { skip: !existsSync(agentBinary) && `no agent binary at ${agentBinary} (npm run build:agent)` }, () => {
  let db: TestDatabase;
  let ctl: ControllerProcess;
  let work: string;
  const rootfs = makeBusyboxRootfs({ keepRunning: true });
  const stop = new AbortController();

  before(async () => {
    db = await createTestDatabase();
    work = await mkdtemp(join(tmpdir(), 'ibex-e2e-vm-'));
    ctl = new ControllerProcess({ databaseUrl: db.url, env: { IBEX_HEARTBEAT_INTERVAL_MS: '1000', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_LOG_LEVEL: 'warn' } });
    await ctl.start();
  });
  after(async () => {
    stop.abort();
    await ctl?.stop('SIGKILL');
    if (ctl) await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await db?.drop();
    await rm(work, { recursive: true, force: true });
    await rm(rootfs, { recursive: true, force: true });
  });

  it('boots, takes a DHCP lease, enrolls with the token through 10.0.2.2 and is online', async () => {
    const kernel = findKernel();
    const token = await ctl.json('/api/v1/enrollment-tokens', { method: 'POST', json: { description: 'image e2e' } });
    const spec = imageSpecSchema.parse({
      name: 'vm-enroll',
      base: { path: rootfs },
      hostname: 'vm-enroll-1',
      network: { interfaces: [{ name: 'lo', method: 'loopback' }, { name: 'eth0', method: 'dhcp' }] },
      kernel: { release: kernel.release, modules: ['virtio_pci', 'virtio_net'] },
      files: glibcFiles(agentBinary),
      agent: { binary: { path: agentBinary }, controller: `grpc://10.0.2.2:${ctl.grpcPort}`, enrollmentToken: token.token },
    });
    const initrd = join(work, 'vm.cpio.gz');
    // gzip level 1: a 128 MB agent at level 9 costs the shared CI cores far more than it saves.
    const built = await buildImageToFile(spec, new LocalImageSourceResolver(), initrd, { gzipLevel: 1 });
    let console_ = '';
    const boot = bootImage({ vmlinuz: kernel.vmlinuz, initrd, timeoutMs: 420_000, memoryMb: 2048, signal: stop.signal, onOutput: (t) => (console_ = t) });
    try {
      const device = await waitFor(
        'the VM to enroll and be online',
        async () => {
          const list = await ctl.json('/api/v1/devices');
          const d = (list.items as Array<{ name: string; status: string }>).find((x) => x.name === 'vm-enroll-1');
          return d?.status === 'online' ? d : undefined;
        },
        400_000,
        1000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\nVM console (last 60 lines):\n${console_.replace(/\r\n/g, '\n').split('\n').slice(-60).join('\n')}`);
      });
      assert.equal(device.status, 'online');
      const out = console_.replace(/\r\n/g, '\n');
      assert.match(out, /IBEX-ADDR eth0 inet 10\.0\.2\.15\/24/);
      assert.match(out, /ibex-agent: started/);
      console.log(`image ${built.size} bytes; enrolled and online`);
    } finally {
      stop.abort();
      await boot;
    }
  });
});
