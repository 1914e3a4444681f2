import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sh } from './netns-device.js';

/**
 * A private mount namespace that outlives the command that made it (`unshare --mount=FILE`),
 * for tests that need bind mounts (a bind-mounted /etc/resolv.conf, as in Docker, LXC and
 * `ip netns exec`) without touching the host's mounts: `bind` mounts inside it, `prefix` runs a
 * program inside it (`nsenter --mount=FILE --`). The handle lives in a private bind mount of a
 * scratch directory (the kernel refuses one on a shared mount); `destroy` unmounts both, also
 * after a failure, and nothing is ever mounted outside the namespace.
 */
export class PrivateMountNamespace {
  readonly dir = mkdtempSync(join(tmpdir(), 'ibex-mntns-'));
  readonly handle = join(this.dir, 'ns');
  private mounted: 'none' | 'dir' | 'ns' = 'none';

  static create(): PrivateMountNamespace {
    const m = new PrivateMountNamespace();
    try {
      sh(['mount', '--bind', m.dir, m.dir]);
      m.mounted = 'dir';
      sh(['mount', '--make-private', m.dir]);
      writeFileSync(m.handle, '');
      sh(['unshare', `--mount=${m.handle}`, '--propagation', 'private', 'true']);
      m.mounted = 'ns';
    } catch (err) {
      m.destroy();
      throw err;
    }
    return m;
  }

  /** argv prefix that runs a program in the namespace. */
  get prefix(): string[] {
    return ['nsenter', `--mount=${this.handle}`, '--'];
  }

  /** Bind-mounts `source` over `target` inside the namespace only. */
  bind(source: string, target: string): void {
    sh([...this.prefix, 'mount', '--bind', source, target]);
  }

  /** Runs a program in the namespace to completion. */
  run(argv: string[], check = true): ReturnType<typeof sh> {
    return sh([...this.prefix, ...argv], check);
  }

  destroy(): void {
    if (this.mounted === 'ns') sh(['umount', this.handle], false);
    if (this.mounted !== 'none') sh(['umount', '-l', this.dir], false);
    this.mounted = 'none';
    rmSync(this.dir, { recursive: true, force: true });
  }
}
