import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import type { CpioEntry, EntryData } from './cpio-newc-writer.js';

/**
 * The image being assembled: every entry by absolute path. Layers (base, packages, the spec's
 * files, what the assembly writes) go over each other the way unpacking them in order onto one
 * directory would, without touching the disk: file data stays a reference (a host file, bytes)
 * until the archive is written.
 */
export class ImageTree {
  private readonly nodes = new Map<string, CpioEntry>();

  get(path: string): CpioEntry | undefined {
    return this.nodes.get(path);
  }

  has(path: string): boolean {
    return this.nodes.has(path);
  }

  /** Every entry (the writer orders them). */
  entries(): CpioEntry[] {
    return [...this.nodes.values()];
  }

  get size(): number {
    return this.nodes.size;
  }

  /** Creates `path` and its missing parents as directories (root-owned 0755 unless given). */
  mkdirp(path: string, attrs: { mode?: number; uid?: number; gid?: number } = {}): void {
    if (path === '/') return;
    const existing = this.nodes.get(path);
    if (existing?.type === 'directory') return;
    if (existing) throw new Error(`${path} is a ${existing.type} in the image, not a directory`);
    this.mkdirp(posix.dirname(path));
    this.nodes.set(path, { type: 'directory', path, mode: attrs.mode ?? 0o755, uid: attrs.uid ?? 0, gid: attrs.gid ?? 0 });
  }

  /**
   * Puts an entry at its path (parents created), replacing what was there like an unpack would:
   * a directory over a directory takes the new mode and owner and keeps the contents; anything
   * else replaces the old entry (a non-empty directory is refused: that is a conflict to fix in the spec).
   */
  put(e: CpioEntry): void {
    this.mkdirp(posix.dirname(e.path));
    const old = this.nodes.get(e.path);
    if (old?.type === 'directory' && e.type !== 'directory' && this.childrenOf(e.path).length) throw new Error(`${e.path} is a non-empty directory in the image; a ${e.type} cannot replace it`);
    if (old?.type === 'file') this.detachLinks(e.path);
    this.nodes.set(e.path, e);
  }

  /** Removes an entry and everything under it. */
  remove(path: string): void {
    for (const c of this.childrenOf(path)) this.nodes.delete(c);
    if (this.nodes.get(path)?.type === 'file') this.detachLinks(path);
    this.nodes.delete(path);
  }

  /** The bytes of a regular file (following hard links), or undefined when there is none. */
  async readFile(path: string): Promise<Buffer | undefined> {
    let e = this.nodes.get(path);
    if (e?.type === 'hardlink') e = this.nodes.get(e.of);
    if (e?.type !== 'file') return undefined;
    const d = e.data();
    if (d instanceof Uint8Array) return Buffer.from(d);
    const chunks: Uint8Array[] = [];
    for await (const c of d) chunks.push(c);
    return Buffer.concat(chunks);
  }

  async readText(path: string): Promise<string | undefined> {
    return (await this.readFile(path))?.toString('utf8');
  }

  private childrenOf(path: string): string[] {
    const prefix = path + '/';
    return [...this.nodes.keys()].filter((p) => p.startsWith(prefix));
  }

  /** Before the file at `path` is replaced or removed, its other names keep its data (as on a disk). */
  private detachLinks(path: string): void {
    const file = this.nodes.get(path) as Extract<CpioEntry, { type: 'file' }>;
    const links = [...this.nodes.values()].filter((n): n is Extract<CpioEntry, { type: 'hardlink' }> => n.type === 'hardlink' && n.of === path);
    if (!links.length) return;
    const [first, ...rest] = links;
    this.nodes.set(first!.path, { ...file, path: first!.path });
    for (const l of rest) this.nodes.set(l.path, { ...l, of: first!.path });
  }
}

export const bytesData = (b: Uint8Array | string): EntryData => {
  const buf = typeof b === 'string' ? Buffer.from(b) : b;
  return () => buf;
};

/** Data read from a host file only when the archive is written. */
export const hostFileData = (hostPath: string): EntryData => () => createReadStream(hostPath, { highWaterMark: 1 << 20 });

export const textFile = (path: string, content: string | Uint8Array, mode = 0o644, uid = 0, gid = 0): CpioEntry => {
  const data = typeof content === 'string' ? Buffer.from(content) : content;
  return { type: 'file', path, mode, uid, gid, size: data.length, data: bytesData(data) };
};
