import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Durable replacement of a small file: write a temp file beside it, fsync it, rename it over
 * the target, fsync the directory. After a crash the file is either the old or the new
 * version, never a mix, and once this returns the new version survives a power cut.
 *
 * Synchronous on purpose: journal writes are small and must happen in the order they were
 * asked for; a blocking write cannot interleave with another one for the same file.
 */
let tmpCounter = 0;

/**
 * Creates `dir` (mode 0700: the journal holds the credential) if missing. Missing ancestors get
 * 0755, so a data dir under a scratch --root does not make `<root>/var` unreadable.
 */
export function ensureDirSync(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT') throw err;
    mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
    mkdirSync(dir, { mode: 0o700 });
  }
}

export interface AtomicWriteOptions {
  /**
   * false: no fsync of the file and its directory. Still atomic (a reader sees the old or the new
   * file, never a mix), but after a power cut the file may be the old one, or empty on some file
   * systems. For files that are not journals and are rewritten often (status.json): each fsync is
   * several milliseconds here and can be far more on a router's flash, on the way to the Hello.
   */
  durable?: boolean;
}

export function writeFileAtomicSync(path: string, data: string | Uint8Array, mode = 0o600, opts: AtomicWriteOptions = {}): void {
  const durable = opts.durable ?? true;
  const dir = dirname(path);
  ensureDirSync(dir);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${++tmpCounter}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    if (durable) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  if (durable) fsyncDirSync(dir);
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeJsonAtomicSync(path: string, value: unknown, mode = 0o600, opts: AtomicWriteOptions = {}): void {
  writeFileAtomicSync(path, JSON.stringify(value, null, 2) + '\n', mode, opts);
}

/** A file that exists but does not parse as JSON (torn, empty, edited by hand). */
export class CorruptJsonFile extends Error {
  constructor(
    readonly path: string,
    cause: Error,
  ) {
    super(`${path} is not valid JSON (${cause.message}); move it away to let the agent start fresh`, { cause });
  }
}

/** Reads a JSON file; `undefined` when it does not exist. A corrupt file is an error naming it. */
export function readJsonSync(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CorruptJsonFile(path, err as Error);
  }
}

/** Removes a file and makes the removal durable. */
export function removeDurableSync(path: string): void {
  rmSync(path, { force: true });
  fsyncDirSync(dirname(path));
}
