import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { errorMessage } from '../../common/errors.js';
import { failpoint } from '../../common/failpoints.js';
import type { Logger } from '../../common/log.js';
import { ensureDirSync, fsyncDirSync, readJsonSync, removeDurableSync, writeFileAtomicSync, writeJsonAtomicSync } from '../../journal/atomic-file.js';
import { defaultDataDir } from '../../journal/data-dir.js';
import { GenerationsRoot, type GenerationsRootDeps } from './generations-root.js';
import { generationsRecordsDir } from './generations-store.js';

/** The records a move carries; `downloads/` holds only leftovers of fetches and is not carried. */
const RECORDS = ['config.json', 'state.json', 'journal.json'];
/** In the new directory while the old one is still to be removed: the move is finished at the next start. */
const MARKER = 'migrated-from.json';

/**
 * Agents before 0.2 kept the generations records at `<root>/var/lib/ibex-agent/generations`
 * whatever --data-dir said. With another --data-dir they are moved to `<data-dir>/generations`
 * once, so an upgraded device keeps its statuses, last-known-good, trial and an interrupted
 * operation's journal. Crash-safe at every point: the records are copied (each fsync'd) into a
 * temporary directory beside the new one with a marker naming the old place, the directory is
 * renamed into place (the commit: from then on the new records are the truth), then the old
 * directory and the marker are removed. A crash before the rename leaves the old records in
 * use (the copy is made again); after it, the next call finds the marker and removes the old
 * directory. Returns a line for the log when it moved something.
 */
export function migrateGenerationsRecords(root: string, dataDir: string, log: Logger): string | undefined {
  const from = generationsRecordsDir(defaultDataDir(root));
  const to = generationsRecordsDir(dataDir);
  if (resolve(from) === resolve(to)) return undefined;
  const marker = join(to, MARKER);
  if (existsSync(to)) {
    if (!existsSync(marker)) return undefined;
    // Renamed into place before a crash: only the old directory is left to remove.
    removeOld(from, readJsonSync(marker) as { from?: unknown });
    removeDurableSync(marker);
    return logged(log, `finished moving the generations records from ${from} to ${to}`);
  }
  const present = RECORDS.filter((f) => existsSync(join(from, f)));
  if (!present.length) return undefined;
  ensureDirSync(dataDir);
  const tmp = join(dataDir, '.generations.migrating');
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o700 });
  for (const f of present) writeFileAtomicSync(join(tmp, f), readFileSync(join(from, f)), statSync(join(from, f)).mode & 0o777);
  writeJsonAtomicSync(join(tmp, MARKER), { from, atMs: Date.now() });
  failpoint('gen-records-copied');
  renameSync(tmp, to);
  fsyncDirSync(dataDir);
  failpoint('gen-records-moved');
  removeOld(from, { from });
  removeDurableSync(marker);
  return logged(log, `moved the generations records (${present.join(', ')}) from ${from} to ${to}: they belong to --data-dir now`);
}

/** Removes the old records directory, only if the marker names it (a damaged marker removes nothing). */
function removeOld(from: string, m: { from?: unknown }): void {
  if (m.from !== from) return;
  rmSync(from, { recursive: true, force: true });
  if (existsSync(dirname(from))) fsyncDirSync(dirname(from));
}

function logged(log: Logger, line: string): string {
  log.info(line);
  return line;
}

/**
 * The GenerationsRoot of a --root whose records live in `dataDir`, after moving records an older
 * agent left at the old place. A move that fails stops here (the old records are intact and stay
 * where they were): carrying on would show a device with no generations.
 */
export function openGenerationsRoot(deps: GenerationsRootDeps & { dataDir: string }): GenerationsRoot {
  try {
    migrateGenerationsRecords(deps.root, deps.dataDir, deps.log);
  } catch (err) {
    throw new Error(
      `moving the generations records from ${generationsRecordsDir(defaultDataDir(deps.root))} to ${generationsRecordsDir(deps.dataDir)} failed (${errorMessage(err)}); nothing was lost: fix the cause (space, permissions) and run the command again`,
    );
  }
  return new GenerationsRoot(deps);
}
