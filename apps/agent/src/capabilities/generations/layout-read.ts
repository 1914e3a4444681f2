import type { SystemAdapter } from '../../system/system-adapter.js';
import type { Btrfs } from './btrfs.js';
import { genRoot, idTimestampMs, isValidId, linksDir, parseCurrentTarget, parseSlotTarget, volumePaths } from './layout.js';

export interface GenerationOnDisk {
  id: string;
  /** `snapshots/<id>/@` exists and is a subvolume. */
  hasRoot: boolean;
  readOnly: boolean;
  /** A usable generation: a read-only `@`. Anything else is what a crash left half made. */
  complete: boolean;
  createdAtMs: number | null;
}

/** What is on the volume, read cheaply: readlinks, readdirs, one `btrfs property get` per generation. */
export interface LayoutState {
  volume: string;
  /** The links directory `current` points at; undefined when `current` is missing or not the wiki's form. */
  currentLinks: string | undefined;
  /** Generation per slot of the current links directory (0 newest); undefined slots are broken links. */
  slots: (string | undefined)[];
  generations: GenerationOnDisk[];
  /** Every links directory on the volume. */
  linksDirs: string[];
  /** Whether `next/current` is left over (a crash between making it and the rename). */
  nextCurrentLeft: boolean;
}

export class LayoutError extends Error {
  override name = 'LayoutError';
}

/** Generations in slot order of a links directory. */
export async function readSlots(sys: SystemAdapter, volume: string, linksId: string): Promise<(string | undefined)[]> {
  const dir = linksDir(volume, linksId);
  const names = (await sys.readdir(dir)).filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(a) - Number(b));
  const out: (string | undefined)[] = [];
  for (const n of names) {
    const st = await sys.lstat(`${dir}/${n}`);
    out[Number(n)] = st?.isSymbolicLink() ? parseSlotTarget(await sys.readlink(`${dir}/${n}`)) : undefined;
  }
  return out;
}

export async function readCurrentLinks(sys: SystemAdapter, volume: string): Promise<string | undefined> {
  const p = volumePaths(volume);
  const st = await sys.lstat(p.current);
  if (!st?.isSymbolicLink()) return undefined;
  return parseCurrentTarget(await sys.readlink(p.current));
}

export async function readLayout(sys: SystemAdapter, btrfs: Btrfs, volume: string): Promise<LayoutState> {
  const p = volumePaths(volume);
  const currentLinks = await readCurrentLinks(sys, volume);
  const slots = currentLinks ? await readSlots(sys, volume, currentLinks) : [];
  const generations: GenerationOnDisk[] = [];
  // Creation order: the id's timestamp has whole seconds, so two generations made within one
  // second are ordered by their directory's birth time (statx, ns on btrfs), then by id.
  const born = new Map<string, number>();
  for (const id of (await sys.readdir(p.snapshots)).sort()) {
    if (!isValidId(id)) continue;
    const st = await sys.lstat(`${p.snapshots}/${id}`);
    if (!st?.isDirectory()) continue;
    const root = genRoot(volume, id);
    const hasRoot = await btrfs.isSubvolume(root);
    const readOnly = hasRoot ? await btrfs.isReadOnly(root) : false;
    generations.push({ id, hasRoot, readOnly, complete: hasRoot && readOnly, createdAtMs: idTimestampMs(id) ?? Math.round(st.birthtimeMs || st.mtimeMs) });
    born.set(id, st.birthtimeMs || st.mtimeMs || 0);
  }
  generations.sort((a, b) => (a.createdAtMs ?? 0) - (b.createdAtMs ?? 0) || born.get(a.id)! - born.get(b.id)! || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const linksDirs = (await sys.readdir(p.links)).filter(isValidId).sort();
  const nextCurrentLeft = (await sys.lstat(p.nextCurrent)) !== undefined;
  return { volume, currentLinks, slots, generations, linksDirs, nextCurrentLeft };
}

/** The generation `current/0` resolves to, if the layout is sound enough to boot. */
export function currentGeneration(l: LayoutState): GenerationOnDisk | undefined {
  const id = l.slots[0];
  return id ? l.generations.find((g) => g.id === id) : undefined;
}

/**
 * Whether this volume holds the wiki's layout (the parts adopt and every operation need).
 * `name` is how the volume is called in the message (its device path; default the host path).
 */
export function describeLayoutProblem(l: LayoutState, name = l.volume): string | undefined {
  if (!l.currentLinks) return `${name}/current is missing or does not point at ./links/<id>`;
  if (l.slots[0] === undefined) return `${name}/links/${l.currentLinks}/0 is missing or does not point at ../../snapshots/<id>`;
  const g = currentGeneration(l);
  if (!g?.hasRoot) return `${name}/current/0/@ (generation ${l.slots[0]}) is not a btrfs subvolume`;
  if (!g.readOnly) return `${name}/current/0/@ (generation ${g.id}) is not read-only; set it with btrfs property set -ts ... ro true`;
  return undefined;
}
