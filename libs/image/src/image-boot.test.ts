import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { imageSpecSchema } from '@ibex/spec';
import { buildImageToFile } from './image-builder.js';
import { LocalImageSourceResolver } from './image-source-resolver.js';
import { BOOT_MARK, makeBusyboxRootfs } from './testing/busybox-rootfs.js';
import { bootImage, findKernel } from './testing/qemu-boot.js';

/**
 * The built image booted for real: Debian's cloud kernel under qemu-system-x86_64 (software
 * emulation), the initramfs from the builder, QEMU's user-mode network answering DHCP. The
 * base is the BusyBox stand-in for Alpine (testing/busybox-rootfs.ts): its rc script starts the
 * services the builder linked into the OpenRC runlevels, in order.
 */
describe('image boot under qemu', () => {
  const work = mkdtempSync(join(tmpdir(), 'ibex-image-boot-'));
  const rootfs = makeBusyboxRootfs();
  after(() => {
    rmSync(work, { recursive: true, force: true });
    rmSync(rootfs, { recursive: true, force: true });
  });

  it('reaches its init, loads the virtio modules, takes a DHCP lease and prints the configured hostname and its addresses', async () => {
    const kernel = findKernel();
    const spec = imageSpecSchema.parse({
      name: 'boot-test',
      base: { path: rootfs },
      hostname: 'ibex-vm-7',
      network: { interfaces: [{ name: 'lo', method: 'loopback' }, { name: 'eth0', method: 'dhcp' }] },
      kernel: { release: kernel.release, modules: ['virtio_pci', 'virtio_net'] },
    });
    const initrd = join(work, 'boot-test.cpio.gz');
    await buildImageToFile(spec, new LocalImageSourceResolver(), initrd);
    const r = await bootImage({ vmlinuz: kernel.vmlinuz, initrd, timeoutMs: 180_000, until: /reboot: Power down|IBEX-ADDR eth0 inet 10\.0\.2\.15/ });
    const out = r.console.replace(/\r\n/g, '\n');
    const tail = out.split('\n').slice(-40).join('\n');
    assert.match(out, new RegExp(`${BOOT_MARK} hostname=ibex-vm-7`), `the VM did not print its hostname; console:\n${tail}`);
    assert.match(out, /rc: sysinit\/devfs\n/, tail);
    assert.match(out, /modules: loaded virtio_net/, tail);
    assert.match(out, /rc: default\/networking\n/, tail);
    // QEMU's user-mode network hands out 10.0.2.15/24 by DHCP.
    assert.match(out, /IBEX-ADDR eth0 inet 10\.0\.2\.15\/24/, tail);
    assert.match(out, /IBEX-ADDR lo inet 127\.0\.0\.1\/8/, tail);
    assert.match(out, /reboot: Power down/, `the VM did not power off by itself; console:\n${tail}`);
    console.log(`boot to power-off: ${r.ms} ms`);
  });
});
