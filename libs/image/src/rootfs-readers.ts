import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { type ImageTree, bytesData, hostFileData } from './image-tree.js';

/**
 * Root filesystems and packages into the image tree: a directory on the build host, or a tar
 * archive (plain or gzip'd; Alpine's minirootfs, and .apk packages, which are gzip'd tars).
 */

// Linux's dev_t encoding (the same as glibc's gnu_dev_major/minor).
const devMajor = (rdev: number) => Number((BigInt(rdev) >> 8n) & 0xfffn) | Number((BigInt(rdev) >> 32n) & ~0xfffn);
const devMinor = (rdev: number) => Number(BigInt(rdev) & 0xffn) | Number((BigInt(rdev) >> 12n) & ~0xffn);

/** Adds every entry of `dir` to the tree at `/` (owners and modes as on disk; data read at write time). */
export async function addDirectory(tree: ImageTree, dir: string): Promise<number> {
  const seenInodes = new Map<string, string>(); // dev:ino -> first image path (hard links)
  let count = 0;
  const walk = async (hostDir: string, imageDir: string): Promise<void> => {
    // Sorted so that which name of a hard-linked file is "the file" does not depend on readdir order.
    const names = (await readdir(hostDir)).sort();
    for (const name of names) {
      const host = join(hostDir, name);
      const path = posix.join(imageDir, name);
      const st = await lstat(host);
      const own = { uid: st.uid, gid: st.gid };
      count++;
      if (st.isDirectory()) {
        tree.put({ type: 'directory', path, mode: st.mode & 0o7777, ...own });
        await walk(host, path);
      } else if (st.isSymbolicLink()) {
        tree.put({ type: 'symlink', path, target: await readlink(host), ...own });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? seenInodes.get(key) : undefined;
        if (first) tree.put({ type: 'hardlink', path, of: first });
        else {
          if (st.nlink > 1) seenInodes.set(key, path);
          tree.put({ type: 'file', path, mode: st.mode & 0o7777, ...own, size: st.size, data: hostFileData(host) });
        }
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        tree.put({ type: st.isCharacterDevice() ? 'char' : 'block', path, mode: st.mode & 0o7777, ...own, major: devMajor(st.rdev), minor: devMinor(st.rdev) });
      } else if (st.isFIFO()) {
        tree.put({ type: 'fifo', path, mode: st.mode & 0o7777, ...own });
      } // sockets are not part of a root filesystem image
    }
  };
  await walk(dir, '/');
  return count;
}

export interface TarOptions {
  /** Skip top-level names starting with "." (an .apk's .PKGINFO, .SIGN.*, .pre-install scripts). */
  skipDotFiles?: boolean;
}

const str = (b: Buffer, off: number, len: number) => {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return (z < 0 ? s : s.subarray(0, z)).toString('utf8');
};
const octal = (b: Buffer, off: number, len: number, what: string, name: string) => {
  // GNU base-256 for large values (first byte has the high bit set).
  if (b[off]! & 0x80) {
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + b[i]!;
    return v;
  }
  const s = str(b, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new Error(`tar: ${name || 'an entry'}: its ${what} field ${JSON.stringify(s)} is not octal (is this a tar archive?)`);
  return parseInt(s, 8);
};

/** The image path of a tar member name: `./etc/x`, `etc/x/` -> `/etc/x`; undefined for the root itself. */
function memberPath(name: string): string | undefined {
  const p = posix.normalize('/' + name).replace(/\/+$/, '');
  if (p.split('/').includes('..')) throw new Error(`tar: the member ${JSON.stringify(name)} leaves the root`);
  return p === '' || p === '/' ? undefined : p;
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp < 0) break;
    const len = parseInt(data.subarray(off, sp).toString(), 10);
    if (!(len > 0)) break;
    const rec = data.subarray(sp + 1, off + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    off += len;
  }
  return out;
}

/**
 * Adds the members of a tar archive (ustar, pax, GNU long names; gzip detected by its magic,
 * concatenated gzip members as in .apk files) to the tree. The archive is read whole: root
 * filesystems and packages are a few MB; big files belong in `files` with a source.
 */
export async function addTarFile(tree: ImageTree, hostPath: string, opts: TarOptions = {}): Promise<number> {
  let buf = await readFile(hostPath);
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = gunzipSync(buf);
  return addTar(tree, buf, opts);
}

export function addTar(tree: ImageTree, buf: Buffer, opts: TarOptions = {}): number {
  let off = 0;
  let count = 0;
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) {
      off += 512;
      continue; // end-of-archive blocks (and, in .apk files, the padding between concatenated tars)
    }
    let name = str(h, 0, 100);
    const typeflag = String.fromCharCode(h[156]!);
    const magic = str(h, 257, 6);
    if (magic.startsWith('ustar') && str(h, 345, 155)) name = `${str(h, 345, 155)}/${name}`;
    const size = octal(h, 124, 12, 'size', name);
    const dataOff = off + 512;
    const data = buf.subarray(dataOff, dataOff + size);
    if (data.length < size) throw new Error(`tar: ${name}: the archive ends inside its data (truncated?)`);
    off = dataOff + Math.ceil(size / 512) * 512;
    if (typeflag === 'x') {
      pax = parsePax(data);
      continue;
    }
    if (typeflag === 'g') continue;
    if (typeflag === 'L') {
      longName = str(data, 0, data.length);
      continue;
    }
    if (typeflag === 'K') {
      longLink = str(data, 0, data.length);
      continue;
    }
    name = pax.path ?? longName ?? name;
    const link = pax.linkpath ?? longLink ?? str(h, 157, 100);
    pax = {};
    longName = longLink = undefined;
    const path = memberPath(name);
    if (!path) continue;
    if (opts.skipDotFiles && path.lastIndexOf('/') === 0 && path.startsWith('/.')) continue;
    const mode = octal(h, 100, 8, 'mode', name) & 0o7777;
    const own = { uid: octal(h, 108, 8, 'uid', name), gid: octal(h, 116, 8, 'gid', name) };
    count++;
    switch (typeflag) {
      case '0':
      case '\0':
      case '7': {
        const bytes = Buffer.from(data); // a copy: the archive buffer can be released
        tree.put({ type: 'file', path, mode, ...own, size: bytes.length, data: bytesData(bytes) });
        break;
      }
      case '1': {
        let of = memberPath(link);
        const target = of ? tree.get(of) : undefined;
        if (target?.type === 'hardlink') of = target.of;
        if (!of || tree.get(of)?.type !== 'file') throw new Error(`tar: ${name} is a hard link to ${link}, which is not an earlier regular file of the archive`);
        tree.put({ type: 'hardlink', path, of });
        break;
      }
      case '2':
        tree.put({ type: 'symlink', path, target: link, ...own });
        break;
      case '3':
      case '4':
        tree.put({ type: typeflag === '3' ? 'char' : 'block', path, mode, ...own, major: octal(h, 329, 8, 'devmajor', name), minor: octal(h, 337, 8, 'devminor', name) });
        break;
      case '5':
        tree.put({ type: 'directory', path, mode, ...own });
        break;
      case '6':
        tree.put({ type: 'fifo', path, mode, ...own });
        break;
      default:
        count--; // other GNU types (sparse, volume labels) do not occur in root filesystems
    }
  }
  return count;
}
