import { join } from 'node:path';
import type { SystemAdapter } from './system-adapter.js';

export class RootEscapeError extends Error {
  override name = 'RootEscapeError';
}

const MAX_SYMLINKS = 40;

export interface ResolvedPath {
  /** Host path of the entry itself (its last component is not followed). */
  host: string;
  /** Host paths of the missing parent directories, outermost first. */
  missingParents: string[];
}

/**
 * Maps an absolute device path to a host path under `root`, the way a process chrooted into
 * `root` would see it: parent components that are symlinks are followed, an absolute link
 * target starts again at `root`. A link that climbs above `root` with ".." is refused, so
 * nothing outside `root` is ever touched. The last component is never followed: writing a file
 * where a symlink is replaces the link rather than writing through it.
 */
export async function resolveUnderRoot(sys: SystemAdapter, root: string, devicePath: string): Promise<ResolvedPath> {
  const parts = devicePath.split('/').filter(Boolean);
  const last = parts.pop();
  if (last === undefined || last === '..' || last === '.') throw new RootEscapeError(`${devicePath} does not name a file`);
  const dir: string[] = [];
  const queue = parts;
  let links = 0;
  let missingFrom = -1;
  while (queue.length) {
    const c = queue.shift()!;
    if (c === '.' || c === '') continue;
    if (c === '..') {
      if (dir.length === 0) throw new RootEscapeError(`${devicePath}: a symlink in its path points outside the root ${root}`);
      dir.pop();
      continue;
    }
    dir.push(c);
    if (missingFrom >= 0) continue;
    const host = join(root, ...dir);
    const st = await sys.lstat(host);
    if (!st) {
      missingFrom = dir.length - 1;
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) throw new RootEscapeError(`${devicePath}: too many levels of symlinks`);
      const target = await sys.readlink(host);
      dir.pop();
      if (target.startsWith('/')) dir.length = 0;
      queue.unshift(...target.split('/'));
      continue;
    }
    if (!st.isDirectory()) throw new RootEscapeError(`${devicePath}: /${dir.join('/')} is not a directory`);
  }
  const missingParents = missingFrom < 0 ? [] : dir.slice(missingFrom).map((_, i) => join(root, ...dir.slice(0, missingFrom + i + 1)));
  return { host: join(root, ...dir, last), missingParents };
}
