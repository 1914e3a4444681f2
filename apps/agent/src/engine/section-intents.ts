import { mkdirSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ensureDirSync } from '../journal/atomic-file.js';
import type { DataDir } from '../journal/data-dir.js';
import { type ChangeJournal, JsonChangeJournal } from '../journal/journal-record.js';

/** The journaled record of a section apply: the capability's backup, taken before the first step. */
export interface Intent {
  section: string;
  startedAtMs: number;
  backup: unknown;
  /**
   * This change's own backup directory under `backup/<section>/` (its bytes): a later apply of
   * the section gets a new one, so it can never overwrite what this change needs to revert.
   * Absent in records of older agents, whose bytes are in `backup/<section>/` itself.
   */
  changeId?: string;
  /** Set once the change is applied and verified but must still be confirmed (engine/confirmations.ts). */
  awaitingConfirmationUntilMs?: number;
  /**
   * Set by recovery at start once the revert is done, until the `reverted` report is journaled
   * (Engine.recoveredReported): a crash in between must not forget that the change was undone
   * (an unconfirmed one would otherwise be applied again by the next pass).
   */
  reverted?: { atMs: number; reason: string; unconfirmed: boolean };
}

/**
 * The intents of section applies in the data dir: `intents/<section>.json` (present = the
 * apply is running, was interrupted, awaits confirmation, or its revert is not reported yet)
 * and `backup/<section>/<changeId>/`, the bytes the backup record points to. Clearing removes
 * the record first and then the bytes, so a crash in between never leaves a record whose backup is gone.
 */
export class SectionIntents {
  constructor(private readonly dataDir: DataDir) {}

  journal(section: string): ChangeJournal<Intent> {
    const file = new JsonChangeJournal<Intent>(join(this.dataDir.intents, `${section}.json`));
    return {
      path: file.path,
      read: () => file.read(),
      write: (r) => file.write(r),
      clear: () => {
        const had = file.read();
        file.clear();
        if (had) this.removeBackupDir(had);
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

  /** Where the bytes of `intent`'s backup are (the per-change directory, or the section's for older records). */
  backupDirOf(intent: Pick<Intent, 'section' | 'changeId'>): string {
    return intent.changeId ? join(this.dataDir.backupOf(intent.section), intent.changeId) : this.dataDir.backupOf(intent.section);
  }

  /**
   * A new, empty backup directory for a new apply of `section`. Directories of other changes
   * stay: one whose record is on disk may still be needed to revert, and is removed with it.
   */
  newChange(section: string, nowMs: number): { changeId: string; backupDir: string } {
    const changeId = `${nowMs.toString(36)}-${randomBytes(4).toString('hex')}`;
    const backupDir = this.backupDirOf({ section, changeId });
    ensureDirSync(this.dataDir.path);
    mkdirSync(backupDir, { recursive: true, mode: 0o700 });
    return { changeId, backupDir };
  }

  /** Removes a change's bytes: what a crash between the backup and journaling its record left is removed at the next apply. */
  removeBackupDir(intent: Pick<Intent, 'section' | 'changeId'>): void {
    rmSync(this.backupDirOf(intent), { recursive: true, force: true });
    if (intent.changeId) {
      try {
        rmdirSync(this.dataDir.backupOf(intent.section));
      } catch {
        // Not empty (another change's bytes) or gone: both fine.
      }
    }
  }

  /** Backup directories of `section` that no record on disk points to (a crash before its intent was journaled). */
  removeOrphans(section: string): void {
    const live = this.journal(section).read();
    let names: string[];
    try {
      names = readdirSync(this.dataDir.backupOf(section));
    } catch {
      return;
    }
    // Old-style bytes directly in backup/<section>/ belong to a record without changeId: kept while it exists.
    if (live && !live.changeId) return;
    for (const n of names) if (n !== live?.changeId) rmSync(join(this.dataDir.backupOf(section), n), { recursive: true, force: true });
  }
}
