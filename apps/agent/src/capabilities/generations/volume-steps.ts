import { dirname, join } from 'node:path';
import { FatalError } from '../../common/errors.js';
import { failpoint } from '../../common/failpoints.js';
import type { GenerationsRoot } from './generations-root.js';
import { type GenerationOnDisk, type LayoutState, currentGeneration, describeLayoutProblem } from './layout-read.js';
import { currentTarget, genDir, linksDir, newId, slotTarget, volumePaths } from './layout.js';

// The steps the operations share, on the volume (host path `volume`) of one GenerationsRoot.

/** `current` must resolve to a complete read-only generation before anything builds on it. */
export function soundCurrent(g: GenerationsRoot, l: LayoutState): GenerationOnDisk {
  const problem = describeLayoutProblem(l, g.config()?.volume);
  if (problem) throw new FatalError(`the generations layout is not usable: ${problem}`);
  return currentGeneration(l)!;
}

/** A new links id (never the same as the generation id it starts with). */
export function freshLinksId(g: GenerationsRoot, avoid: string): string {
  let id = newId(new Date(g.now()));
  while (id === avoid) id = newId(new Date(g.now()));
  return id;
}

export async function mkdirp(g: GenerationsRoot, dir: string): Promise<void> {
  if (!(await g.sys.lstat(dir))) await g.sys.mkdir(dir, 0o755);
}

/** `links/<links>/0..N` pointing at `slots`. */
export async function writeLinks(g: GenerationsRoot, volume: string, links: string, slots: readonly string[]): Promise<void> {
  const dir = linksDir(volume, links);
  await mkdirp(g, volumePaths(volume).links);
  await g.sys.mkdir(dir, 0o755);
  for (const [i, gen] of slots.entries()) await g.sys.symlinkAtomic(slotTarget(gen), join(dir, String(i)));
}

/** The switch: `next/current` -> `./links/<links>`, then ONE rename() over `current`, then fsync. */
export async function switchLinks(g: GenerationsRoot, volume: string, links: string): Promise<void> {
  const p = volumePaths(volume);
  await mkdirp(g, p.next);
  await g.sys.symlinkAtomic(currentTarget(links), p.nextCurrent);
  failpoint('gen-next-linked');
  await g.sys.rename(p.nextCurrent, p.current);
}

export async function removeLinksDir(g: GenerationsRoot, volume: string, links: string): Promise<boolean> {
  const dir = linksDir(volume, links);
  const st = await g.sys.lstat(dir);
  if (!st?.isDirectory()) return false;
  for (const n of await g.sys.readdir(dir)) {
    const e = await g.sys.lstat(join(dir, n));
    if (e?.isSymbolicLink() || e?.isFile()) await g.sys.unlink(join(dir, n));
  }
  return g.sys.rmdirIfEmpty(dir);
}

/** Subvolumes first (`@`, a half-received stream), then the directory; unknown content is left and logged. */
export async function deleteGeneration(g: GenerationsRoot, volume: string, gen: GenerationOnDisk): Promise<void> {
  const dir = genDir(volume, gen.id);
  const recv = join(dir, '.receive');
  for (const n of await g.sys.readdir(recv)) if (await g.btrfs.isSubvolume(join(recv, n))) await g.btrfs.delete(join(recv, n));
  await g.sys.rmdirIfEmpty(recv);
  if (await g.btrfs.isSubvolume(join(dir, '@'))) {
    await g.btrfs.delete(join(dir, '@'));
    failpoint('gen-gc-deleted');
  }
  if (!(await g.sys.rmdirIfEmpty(dir))) g.log.warn('a generation directory still holds something that is not a subvolume; left in place', { dir });
}

/**
 * A download is made before the journal names it (a bad one must change nothing), so a crash
 * during or just after it leaves a file nobody removes. Called under the lock with no operation
 * journaled: anything in the downloads directory then is such a leftover.
 */
export async function clearStaleDownloads(g: GenerationsRoot): Promise<void> {
  const dir = g.store.downloadsDir;
  for (const name of await g.sys.readdir(dir)) {
    // A partial download named by its sha256 is kept for a week: the next job for the same
    // bytes resumes it (artifacts/artifact-fetcher.ts) instead of starting again.
    if (RESUMABLE.test(name) && ((await g.sys.lstat(join(dir, name)))?.mtimeMs ?? 0) > g.now() - PART_KEEP_MS) continue;
    await g.sys.unlink(join(dir, name));
  }
}
const RESUMABLE = /^[0-9a-f]{64}\.part$/;
const PART_KEEP_MS = 7 * 86_400_000;

/** A journaled download, only ever inside the downloads directory (the journal is a file on disk). */
export async function removeDownload(g: GenerationsRoot, file: string | null): Promise<void> {
  if (file && dirname(file) === g.store.downloadsDir) await g.sys.unlink(file);
}
