import type { Stats } from 'node:fs';
import { basename } from 'node:path';

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  signal?: AbortSignal;
  input?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
  /** Signal sent on abort or timeout (default SIGTERM). */
  killSignal?: NodeJS.Signals;
}

export interface WriteOptions {
  mode: number;
  /** Called after the temp file is written and fsync'd, before it is renamed into place. */
  beforeRename?: () => void;
}

/**
 * Everything a capability's executors may do to the device. Paths are host paths (already
 * resolved under --root by the caller). There is no way to run a shell string: programs get
 * an argument array.
 */
export interface SystemAdapter {
  exec(argv: readonly [string, ...string[]], opts?: ExecOptions): Promise<ExecResult>;
  /** lstat that returns undefined for a missing path. */
  lstat(path: string): Promise<Stats | undefined>;
  readFile(path: string): Promise<Buffer>;
  readlink(path: string): Promise<string>;
  /** Names in a directory; empty when it does not exist. */
  readdir(path: string): Promise<string[]>;
  /** Temp file beside `path`, write, fchmod, fsync, rename over `path` (replacing a symlink, not following it), fsync dir. */
  writeFileAtomic(path: string, data: Uint8Array, opts: WriteOptions): Promise<void>;
  /**
   * Overwrites an existing regular file's bytes where it is (open without O_CREAT, write,
   * truncate, fchmod, fsync): for a file that rename() cannot replace, a bind mount above all.
   * Not atomic: a reader may see a mix for a moment, so callers keep the old bytes to revert.
   */
  writeFileInPlace(path: string, data: Uint8Array, mode: number): Promise<void>;
  /** The mount points this process sees (/proc/self/mountinfo), as absolute paths. */
  mountPoints(): Promise<Set<string>>;
  /** Absolute path with every symlink resolved (realpath(3)). */
  realpath(path: string): Promise<string>;
  /** Creates (or replaces) a symlink atomically. */
  symlinkAtomic(target: string, path: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  /** Removes a file or symlink (never a directory) and fsyncs its directory; missing is fine. */
  unlink(path: string): Promise<void>;
  mkdir(path: string, mode: number): Promise<void>;
  /** Removes an empty directory; false when it is not empty or missing. */
  rmdirIfEmpty(path: string): Promise<boolean>;
  /** One rename() (replacing `to`, a symlink included, without following it), then fsync of both directories. */
  rename(from: string, to: string): Promise<void>;
}

/** Atomic writes go through a temp file `.<name>.ibex-<random>.tmp` beside the target. */
export function tempNameOf(target: string, random: string): string {
  return `.${basename(target)}.ibex-${random}.tmp`;
}

/** Whether `name` is a temp file an atomic write of `target` left behind (after a crash). */
export function isTempFileOf(name: string, target: string): boolean {
  return name.startsWith(`.${basename(target)}.ibex-`) && name.endsWith('.tmp');
}
