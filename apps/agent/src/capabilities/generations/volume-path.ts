import { lstatSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { FatalError } from '../../common/errors.js';

const MAX_LINKS = 40;

/**
 * The host path of a device path under `root`, with every symbolic link on the way followed as
 * the device sees it: an absolute target is taken from `root`, not from the host's `/`, and `..`
 * stops at `root`. A plain join would follow `<root>/mnt -> /media` to the host's /media, and
 * a volume behind a symlinked parent would never match its mount point in mountinfo (which
 * lists real paths), so booted and mounted generations would go unseen. Components that do
 * not exist yet are kept as they are.
 */
export function resolveInRoot(root: string, devicePath: string): string {
  const pending = devicePath.split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = join(root, ...done, part);
    let isLink: boolean;
    try {
      isLink = lstatSync(host).isSymbolicLink();
    } catch {
      done.push(part, ...pending.filter((p) => p !== '.'));
      break;
    }
    if (!isLink) {
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS) throw new FatalError(`volume: ${devicePath} has more than ${MAX_LINKS} symbolic links on its way (a loop?); give the real path`);
    const target = readlinkSync(host);
    if (target.startsWith('/')) done.length = 0;
    pending.unshift(...target.split('/').filter(Boolean));
  }
  return join(root, ...done);
}
