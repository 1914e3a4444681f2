/**
 * A streaming, deterministic cpio "newc" writer (the format the kernel unpacks into the initramfs:
 * ../shared/research/device-mechanisms.md section 5, the kernel's
 * Documentation/driver-api/early-userspace/buffer-format.rst).
 *
 * Deterministic: entries are written in path order (component by component, so every parent
 * comes before its children), inode numbers are assigned in that order, every mtime is the same
 * fixed value and owners are what the entries say: the same entries give the same bytes.
 * Device nodes are just headers, so `/dev/console` is written without root or mknod.
 * File data is pulled from each entry's `data()` only while that entry is written, so a 100 MB
 * agent binary streams through without being held in memory.
 */

export type EntryData = () => AsyncIterable<Uint8Array> | Uint8Array;

interface Base {
  /** Absolute path in the image (`/etc/passwd`); written without the leading slash. */
  path: string;
  uid: number;
  gid: number;
}
export type CpioEntry =
  | (Base & { type: 'directory'; mode: number })
  | (Base & { type: 'file'; mode: number; size: number; data: EntryData })
  | (Base & { type: 'symlink'; target: string })
  | (Base & { type: 'char' | 'block'; mode: number; major: number; minor: number })
  | (Base & { type: 'fifo'; mode: number })
  /** Another name of the file at `of` (same inode; the data is written once, with the last name). */
  | { type: 'hardlink'; path: string; of: string };

const S_IFMT = { directory: 0o040000, file: 0o100000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 } as const;
const MAX_U32 = 0xffff_ffff;
const TRAILER = 'TRAILER!!!';

/** Compares paths component by component (bytewise), so `/a` < `/a/b` < `/a.b`: parents first. */
export function comparePaths(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return Buffer.compare(Buffer.from(pa[i]!), Buffer.from(pb[i]!));
  }
  return pa.length - pb.length;
}

const hex8 = (n: number, field: string, path: string) => {
  if (!Number.isInteger(n) || n < 0 || n > MAX_U32) throw new Error(`cpio: ${path}: ${field} ${n} does not fit the newc header (0..${MAX_U32})`);
  return n.toString(16).padStart(8, '0');
};
const pad4 = (n: number) => (4 - (n % 4)) % 4;
const ZEROS = Buffer.alloc(4);

interface HeaderFields {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  size: number;
  rdevmajor: number;
  rdevminor: number;
}

function header(name: string, f: HeaderFields): Buffer {
  const nameBytes = Buffer.from(name + '\0');
  const h =
    '070701' +
    [f.ino, f.mode, f.uid, f.gid, f.nlink, f.mtime, f.size, 0, 0, f.rdevmajor, f.rdevminor, nameBytes.length, 0].map((v, i) => hex8(v, HEADER_FIELD_NAMES[i]!, name)).join('');
  const out = Buffer.concat([Buffer.from(h, 'ascii'), nameBytes]);
  return Buffer.concat([out, ZEROS.subarray(0, pad4(out.length))]);
}
const HEADER_FIELD_NAMES = ['ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'filesize', 'devmajor', 'devminor', 'rdevmajor', 'rdevminor', 'namesize', 'check'];

export interface CpioOptions {
  /** The mtime of every entry (default 0: reproducible). */
  mtime?: number;
}

/** Checks the entries and puts them in archive order; throws naming the first bad entry. */
export function orderEntries(entries: readonly CpioEntry[]): CpioEntry[] {
  const byPath = new Map<string, CpioEntry>();
  for (const e of entries) {
    if (!e.path.startsWith('/') || e.path === '/' || e.path.split('/').some((c, i) => i > 0 && (c === '' || c === '.' || c === '..'))) throw new Error(`cpio: ${JSON.stringify(e.path)} is not a normalised absolute path`);
    if (byPath.has(e.path)) throw new Error(`cpio: ${e.path} is given twice`);
    byPath.set(e.path, e);
  }
  for (const e of entries) {
    const parent = e.path.slice(0, e.path.lastIndexOf('/'));
    if (parent && byPath.get(parent)?.type !== 'directory') throw new Error(`cpio: ${e.path}: its parent ${parent} is not a directory in the archive`);
    if (e.type === 'hardlink' && byPath.get(e.of)?.type !== 'file') throw new Error(`cpio: ${e.path}: a hard link must name a regular file, and ${e.of} is not one`);
  }
  return [...entries].sort((a, b) => comparePaths(a.path, b.path));
}

async function* dataOf(e: Extract<CpioEntry, { type: 'file' }>): AsyncGenerator<Uint8Array> {
  const d = e.data();
  let n = 0;
  if (d instanceof Uint8Array) {
    n = d.length;
    yield d;
  } else {
    for await (const chunk of d) {
      n += chunk.length;
      if (n > e.size) break;
      yield chunk;
    }
  }
  // The header already said how long it is: a file that changed size mid-build would corrupt the archive.
  if (n !== e.size) throw new Error(`cpio: ${e.path} was to have ${e.size} bytes but its data had ${n > e.size ? 'more' : n}; did it change during the build?`);
}

/** The archive as a stream of chunks (pipe it through gzip for an initramfs). */
export async function* cpioNewc(entries: readonly CpioEntry[], opts: CpioOptions = {}): AsyncGenerator<Uint8Array> {
  const mtime = opts.mtime ?? 0;
  const ordered = orderEntries(entries);
  const ino = new Map<string, number>();
  // Inodes in archive order; a hard link shares its file's inode.
  let next = 1;
  for (const e of ordered) if (e.type !== 'hardlink') ino.set(e.path, next++);
  const names = new Map<string, string[]>(); // file path -> every name of it, in archive order
  for (const e of ordered) {
    const file = e.type === 'hardlink' ? e.of : e.type === 'file' ? e.path : undefined;
    if (file !== undefined) names.set(file, [...(names.get(file) ?? []), e.path]);
  }
  const byPath = new Map(ordered.map((e) => [e.path, e]));

  for (const e of ordered) {
    const name = e.path.slice(1);
    if (e.type === 'file' || e.type === 'hardlink') {
      const file = (e.type === 'file' ? e : byPath.get(e.of)) as Extract<CpioEntry, { type: 'file' }>;
      const all = names.get(file.path)!;
      // GNU cpio -i and the kernel both take the data from the last name of a linked file.
      const last = all[all.length - 1] === e.path;
      yield header(name, { ino: ino.get(file.path)!, mode: S_IFMT.file | (file.mode & 0o7777), uid: file.uid, gid: file.gid, nlink: all.length, mtime, size: last ? file.size : 0, rdevmajor: 0, rdevminor: 0 });
      if (last) {
        yield* dataOf(file);
        if (pad4(file.size)) yield ZEROS.subarray(0, pad4(file.size));
      }
      continue;
    }
    const common = { ino: ino.get(e.path)!, uid: e.uid, gid: e.gid, mtime, rdevmajor: 0, rdevminor: 0 };
    switch (e.type) {
      case 'directory':
        yield header(name, { ...common, mode: S_IFMT.directory | (e.mode & 0o7777), nlink: 2, size: 0 });
        break;
      case 'symlink': {
        const target = Buffer.from(e.target);
        yield header(name, { ...common, mode: S_IFMT.symlink | 0o777, nlink: 1, size: target.length });
        yield Buffer.concat([target, ZEROS.subarray(0, pad4(target.length))]);
        break;
      }
      case 'char':
      case 'block':
        yield header(name, { ...common, mode: S_IFMT[e.type] | (e.mode & 0o7777), nlink: 1, size: 0, rdevmajor: e.major, rdevminor: e.minor });
        break;
      case 'fifo':
        yield header(name, { ...common, mode: S_IFMT.fifo | (e.mode & 0o7777), nlink: 1, size: 0 });
        break;
    }
  }
  yield header(TRAILER, { ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, size: 0, rdevmajor: 0, rdevminor: 0 });
}
