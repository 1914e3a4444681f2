import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDirSync } from '../journal/atomic-file.js';
import type { DataDir } from '../journal/data-dir.js';
import { type ChangeJournal, JsonChangeJournal } from '../journal/journal-record.js';

/** The journaled record of a section apply: the capability's backup, taken before the first step. */
export interface Intent {
  section: string;
  startedAtMs: number;
  backup: unknown;
  /** Set once the change is applied and verified but must still be confirmed (engine/confirmations.ts). */
  awaitingConfirmationUntilMs?: number;
}

/**
 * The intents of section applies in the data dir: `intents/<section>.json` (present = the
 * apply is running, was interrupted, or awaits confirmation) and `backup/<section>/`, the bytes
 * the backup record points to. Clearing removes the record first and then the bytes, so a crash
 * in between never leaves a record whose backup is gone.
 */
export class SectionIntents {
  constructor(private readonly dataDir: DataDir) {}

  journal(section: string): ChangeJournal<Intent> {
    const file = new JsonChangeJournal<Intent>(join(this.dataDir.intents, `${section}.json`));
    const backupDir = this.backupDir(section);
    return {
      path: file.path,
      read: () => file.read(),
      write: (r) => file.write(r),
      clear: () => {
        file.clear();
        rmSync(backupDir, { recursive: true, force: true });
      },
    };
  }

  /** Every intent on disk. */
  list(): Intent[] {
    let names: string[];
    try {
      names = readdirSync(this.dataDir.intents).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
    } catch {
      return [];
    }
    return names.flatMap((n) => this.journal(n.slice(0, -'.json'.length)).read() ?? []);
  }

  backupDir(section: string): string {
    return this.dataDir.backupOf(section);
  }

  /** An empty backup directory for a new apply of `section`. */
  resetBackupDir(section: string): string {
    const dir = this.backupDir(section);
    rmSync(dir, { recursive: true, force: true });
    ensureDirSync(this.dataDir.path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }
}
