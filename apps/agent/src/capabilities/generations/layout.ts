import { randomInt } from 'node:crypto';
import { join } from 'node:path';

/**
 * The Alpine wiki's layout ("Immutable root with atomic upgrades") on the btrfs top level:
 *
 *   snapshots/<gen>/@        one read-only root per generation
 *   links/<links>/0..N       symlinks `../../snapshots/<gen>`: 0 newest, 1..N fallbacks
 *   current -> ./links/<links>   what the boot entries follow (`/current/0/@`, `/current/1/@` ...)
 *   next/                    where the new `current` symlink is made before one rename() over the old
 *   commons/                 subvolumes that are never snapshotted (@var@log, @home ...)
 *   fstab                    template; CURRENT_SNAPSHOTS_PATH becomes `/snapshots/<gen>`
 */
export const FSTAB_PLACEHOLDER = 'CURRENT_SNAPSHOTS_PATH';
/** The wiki's links directories hold 0..3: the newest generation and three fallbacks. */
export const DEFAULT_FALLBACKS = 3;

export interface VolumePaths {
  volume: string;
  snapshots: string;
  links: string;
  current: string;
  next: string;
  nextCurrent: string;
  commons: string;
  fstab: string;
}

export function volumePaths(volume: string): VolumePaths {
  return {
    volume,
    snapshots: join(volume, 'snapshots'),
    links: join(volume, 'links'),
    current: join(volume, 'current'),
    next: join(volume, 'next'),
    nextCurrent: join(volume, 'next', 'current'),
    commons: join(volume, 'commons'),
    fstab: join(volume, 'fstab'),
  };
}

export const genDir = (volume: string, id: string) => join(volume, 'snapshots', id);
export const genRoot = (volume: string, id: string) => join(volume, 'snapshots', id, '@');
export const linksDir = (volume: string, id: string) => join(volume, 'links', id);

/** What `current` holds: the wiki writes `./links/<id>`. */
export const currentTarget = (linksId: string) => `./links/${linksId}`;
/** What a slot link holds: `../../snapshots/<gen>`. */
export const slotTarget = (genId: string) => `../../snapshots/${genId}`;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Generation and links ids are plain names (no `/`, no `..`): they become path components. */
export function isValidId(id: string): boolean {
  return ID_RE.test(id) && id !== '.' && id !== '..';
}

/** `links/<id>` (with or without `./`) from what `current` points at; undefined for anything else. */
export function parseCurrentTarget(target: string): string | undefined {
  const m = /^(?:\.\/)?links\/([^/]+)\/?$/.exec(target);
  return m && isValidId(m[1]!) ? m[1] : undefined;
}

/** `<gen>` from a slot link `../../snapshots/<gen>` (also accepts `/snapshots/<gen>`). */
export function parseSlotTarget(target: string): string | undefined {
  const m = /^(?:\.\.\/\.\.|)\/snapshots\/([^/]+)\/?$/.exec(target);
  return m && isValidId(m[1]!) ? m[1] : undefined;
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** The wiki's ids: UTC `YYYYmmddHHMMSS` followed by 8 random letters. */
export function newId(now: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const ts = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  let r = '';
  for (let i = 0; i < 8; i++) r += LETTERS[randomInt(LETTERS.length)];
  return ts + r;
}

/** Creation time from a wiki id's timestamp prefix; null when the id has none. */
export function idTimestampMs(id: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})/.exec(id);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, s);
  return Number.isFinite(t) && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 ? t : null;
}

/**
 * The links of a new links directory: `first` at 0, then the previous slots in order without
 * `first`, cut to `fallbacks + 1` entries; short lists repeat their last entry (the wiki's first
 * generation points all four at itself).
 */
export function shiftSlots(first: string, previous: readonly string[], fallbacks: number): string[] {
  const out = [first];
  for (const g of previous) if (!out.includes(g) && out.length < fallbacks + 1) out.push(g);
  while (out.length < fallbacks + 1) out.push(out[out.length - 1]!);
  return out;
}

/** The wiki's fstab template rendered for one generation. */
export function renderFstab(template: string, genId: string): string {
  return template.split(FSTAB_PLACEHOLDER).join(`/snapshots/${genId}`);
}
