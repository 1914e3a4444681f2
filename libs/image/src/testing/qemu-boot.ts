import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';

/** The newest kernel under /boot (Debian's linux-image-cloud-amd64: scripts/setup-system.sh) and its release. */
export function findKernel(): { vmlinuz: string; release: string } {
  const k = readdirSync('/boot')
    .filter((f) => f.startsWith('vmlinuz-'))
    .sort()
    .pop();
  if (!k) throw new Error('no /boot/vmlinuz-*: install linux-image-cloud-amd64 (scripts/setup-system.sh)');
  return { vmlinuz: `/boot/${k}`, release: k.slice('vmlinuz-'.length) };
}

export interface BootResult {
  /** Everything the VM printed on its serial console. */
  console: string;
  /** Whether `until` was seen before the deadline. */
  matched: boolean;
  exitCode: number | null;
  ms: number;
}

/**
 * Boots an initramfs with qemu-system-x86_64 under software emulation (no KVM here): serial
 * console on stdio, QEMU's user-mode network (DHCP from 10.0.2.2, the VM gets 10.0.2.15) on a
 * virtio NIC. Resolves when the VM powers off, when `until` has been printed and `stopOnMatch`,
 * or at the deadline; the qemu process is always killed before it resolves.
 */
export function bootImage(opts: { vmlinuz: string; initrd: string; timeoutMs: number; until?: RegExp; stopOnMatch?: boolean; memoryMb?: number; netdev?: string; signal?: AbortSignal; onOutput?: (text: string) => void }): Promise<BootResult> {
  const started = Date.now();
  const args = [
    '-nographic',
    '-no-reboot',
    '-monitor',
    'none',
    '-m',
    String(opts.memoryMb ?? 256),
    '-smp',
    '1',
    '-kernel',
    opts.vmlinuz,
    '-initrd',
    opts.initrd,
    '-append',
    'console=ttyS0 panic=-1 loglevel=4',
    '-netdev',
    opts.netdev ?? 'user,id=n0',
    '-device',
    'virtio-net-pci,netdev=n0',
  ];
  return new Promise((resolve, reject) => {
    const p = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // A test process that dies mid-boot takes its VM with it.
    const killOnExit = () => p.kill('SIGKILL');
    process.once('exit', killOnExit);
    let out = '';
    let matched = false;
    let done = false;
    const finish = (exitCode: number | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (p.exitCode === null) p.kill('SIGKILL');
      process.removeListener('exit', killOnExit);
      resolve({ console: out, matched, exitCode, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(null), opts.timeoutMs);
    opts.signal?.addEventListener('abort', () => finish(null), { once: true });
    const onData = (d: Buffer) => {
      out += d.toString('utf8');
      opts.onOutput?.(out);
      if (opts.until && !matched && opts.until.test(out)) {
        matched = true;
        if (opts.stopOnMatch) finish(null);
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`could not run qemu-system-x86_64 (${err.message}); install qemu-system-x86 (scripts/setup-system.sh)`));
    });
    p.on('exit', (code) => finish(code));
  });
}
