import { statfs as statfsAsync } from 'node:fs/promises';
import type { Logger } from '../common/log.js';

export interface StatfsLike {
  blocks: number;
  bfree: number;
  bsize: number;
}

export interface FilesystemSizesOptions {
  statfs?: (path: string) => Promise<StatfsLike>;
  /** How long one filesystem may take to answer before it is reported without sizes. */
  timeoutMs?: number;
  log?: Logger;
}

export const STATFS_TIMEOUT_MS = 2000;

let hungCalls = 0;
/**
 * statfs calls of this process that timed out and have not returned: each keeps the event loop
 * alive, so a command that ends with one pending exits explicitly (main.ts).
 */
export const hungStatfsCalls = (): number => hungCalls;

/**
 * Sizes of mounted filesystems for the facts, with a deadline per filesystem. A network mount
 * whose server is gone (NFS "hard") blocks statfs(2) in the kernel indefinitely: synchronous, that
 * froze the event loop and with it heartbeats and jobs. Asynchronous, the call occupies one libuv
 * thread-pool thread until the kernel answers, so a filesystem whose call is still pending is not
 * asked again (it would take another thread each time); it is reported without sizes until its
 * call returns. The hang is logged once, and its end once.
 */
export class FilesystemSizes {
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly statfs: (path: string) => Promise<StatfsLike>;
  private readonly timeoutMs: number;

  constructor(private readonly opts: FilesystemSizesOptions = {}) {
    this.statfs = opts.statfs ?? ((p) => statfsAsync(p));
    this.timeoutMs = opts.timeoutMs ?? STATFS_TIMEOUT_MS;
  }

  /** Filesystems whose statfs has not answered yet (each holds a thread-pool thread). */
  get hung(): number {
    return this.pending.size;
  }

  /** Size and used bytes, or undefined when the filesystem cannot tell (in time). */
  async sizeOf(mountpoint: string): Promise<{ sizeBytes: number; usedBytes: number } | undefined> {
    if (this.pending.has(mountpoint)) return undefined;
    let call: Promise<StatfsLike>;
    try {
      call = this.statfs(mountpoint);
    } catch {
      return undefined;
    }
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.timeoutMs);
    });
    try {
      const r = await Promise.race([call, deadline]);
      if (r === 'timeout') {
        this.hang(mountpoint, call);
        return undefined;
      }
      return { sizeBytes: r.blocks * r.bsize, usedBytes: (r.blocks - r.bfree) * r.bsize };
    } catch {
      // Unreachable mount (stale NFS handle, permissions): listed with unknown size.
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  private hang(mountpoint: string, call: Promise<unknown>): void {
    const since = Date.now();
    this.opts.log?.warn('a filesystem did not answer statfs in time (a hung network mount?); it is reported without sizes until it answers', { mountpoint, timeoutMs: this.timeoutMs });
    const tracked = call.then(
      () => undefined,
      () => undefined,
    );
    this.pending.set(mountpoint, tracked);
    hungCalls++;
    void tracked.then(() => {
      hungCalls--;
      this.pending.delete(mountpoint);
      this.opts.log?.info('a filesystem answers statfs again', { mountpoint, afterMs: Date.now() - since });
    });
  }
}
