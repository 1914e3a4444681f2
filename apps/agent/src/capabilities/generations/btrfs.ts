import type { ExecOptions, SystemAdapter } from '../../system/system-adapter.js';

/** A command that exited non-zero: names the argv and carries stderr, so a job log says what failed. */
export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    readonly argv: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`${argv.join(' ')} failed (${code === null ? 'killed' : `exit ${code}`})${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`);
  }
}

export async function run(sys: SystemAdapter, argv: readonly [string, ...string[]], opts?: ExecOptions): Promise<string> {
  const r = await sys.exec(argv, opts);
  if (r.code !== 0) throw new CommandError(argv, r.code, r.stderr);
  return r.stdout;
}

/** The btrfs-progs commands the generations capability uses, each an argument array. */
export class Btrfs {
  constructor(private readonly sys: SystemAdapter) {}

  async create(path: string): Promise<void> {
    await run(this.sys, ['btrfs', 'subvolume', 'create', path]);
  }

  /** A writable snapshot (the copy an upgrade changes). */
  async snapshot(from: string, to: string): Promise<void> {
    await run(this.sys, ['btrfs', 'subvolume', 'snapshot', from, to]);
  }

  /** Deletes a subvolume; a read-only one needs no `ro false` first (checked on a real btrfs). */
  async delete(path: string): Promise<void> {
    await run(this.sys, ['btrfs', 'subvolume', 'delete', path]);
  }

  async setReadOnly(path: string): Promise<void> {
    await run(this.sys, ['btrfs', 'property', 'set', '-ts', path, 'ro', 'true']);
  }

  async isReadOnly(path: string): Promise<boolean> {
    const out = await run(this.sys, ['btrfs', 'property', 'get', '-ts', path, 'ro']);
    return /ro=true/.test(out);
  }

  /** Subvolumes directly below `dir` (btrfs marks a subvolume's root directory with inode 256). */
  async isSubvolume(path: string): Promise<boolean> {
    const st = await this.sys.lstat(path);
    return !!st && st.isDirectory() && st.ino === 256;
  }

  async receive(streamFile: string, intoDir: string, signal?: AbortSignal): Promise<void> {
    await run(this.sys, ['btrfs', 'receive', '-f', streamFile, intoDir], { signal });
  }

  /** Whether `path` is on btrfs at all (the error a user sees when the volume is wrong). */
  async isBtrfs(path: string): Promise<boolean> {
    const r = await this.sys.exec(['stat', '-f', '-c', '%T', path]);
    return r.code === 0 && r.stdout.trim() === 'btrfs';
  }
}
