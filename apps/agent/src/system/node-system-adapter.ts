import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, readdir, readFile, readlink, realpath, rename, rmdir, symlink, unlink } from 'node:fs/promises';
import { parseMountinfo } from './mountinfo.js';
import { basename, dirname, join } from 'node:path';
import { type ExecOptions, type ExecResult, type SystemAdapter, type WriteOptions, tempNameOf } from './system-adapter.js';

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function tmpBeside(path: string): string {
  return join(dirname(path), tempNameOf(path, randomBytes(4).toString('hex')));
}

const MAX_OUTPUT = 1 << 20;

/** The real system. */
export class NodeSystemAdapter implements SystemAdapter {
  exec(argv: readonly [string, ...string[]], opts: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const [cmd, ...args] = argv;
      const child = spawn(cmd, args, {
        shell: false,
        stdio: ['pipe', 'pipe', 'pipe'],
        signal: opts.signal,
        timeout: opts.timeoutMs,
        ...(opts.killSignal ? { killSignal: opts.killSignal } : {}),
        env: opts.env ?? process.env,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        if (stdout.length < MAX_OUTPUT) stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < MAX_OUTPUT) stderr += d.toString();
      });
      child.on('error', (err) => reject(new Error(`${cmd} could not run: ${err.message}`, { cause: err })));
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
      // A program that exits (or never starts) before reading its input closes the pipe: not our error.
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input ?? '');
    });
  }

  async lstat(path: string) {
    try {
      return await lstat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  readFile(path: string): Promise<Buffer> {
    return readFile(path);
  }

  readlink(path: string): Promise<string> {
    return readlink(path);
  }

  async readdir(path: string): Promise<string[]> {
    try {
      return await readdir(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async writeFileAtomic(path: string, data: Uint8Array, opts: WriteOptions): Promise<void> {
    const tmp = tmpBeside(path);
    const fh = await open(tmp, 'wx', opts.mode);
    try {
      await fh.writeFile(data);
      // The umask may have cut bits off the mode given to open().
      await fh.chmod(opts.mode);
      await fh.sync();
    } catch (err) {
      await fh.close();
      await unlink(tmp).catch(() => {});
      throw err;
    }
    await fh.close();
    try {
      opts.beforeRename?.();
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
    await fsyncDir(dirname(path));
  }

  async writeFileInPlace(path: string, data: Uint8Array, mode: number): Promise<void> {
    // r+: never creates (a missing file is the atomic path's case) and never follows into a new inode.
    const fh = await open(path, 'r+');
    try {
      await fh.write(data, 0, data.length, 0);
      await fh.truncate(data.length);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async mountPoints(): Promise<Set<string>> {
    return new Set(parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8')).map((m) => m.mountPoint));
  }

  realpath(path: string): Promise<string> {
    return realpath(path);
  }

  async symlinkAtomic(target: string, path: string): Promise<void> {
    const tmp = tmpBeside(path);
    await symlink(target, tmp);
    try {
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
    await fsyncDir(dirname(path));
  }

  chmod(path: string, mode: number): Promise<void> {
    return chmod(path, mode);
  }

  async unlink(path: string): Promise<void> {
    try {
      await unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await fsyncDir(dirname(path));
  }

  async mkdir(path: string, mode: number): Promise<void> {
    await mkdir(path, { mode });
    await fsyncDir(dirname(path));
  }

  async rmdirIfEmpty(path: string): Promise<boolean> {
    try {
      await rmdir(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTEMPTY' || code === 'EEXIST') return false;
      throw err;
    }
    await fsyncDir(dirname(path));
    return true;
  }

  async rename(from: string, to: string): Promise<void> {
    await rename(from, to);
    await fsyncDir(dirname(to));
    if (dirname(from) !== dirname(to)) await fsyncDir(dirname(from));
  }
}
