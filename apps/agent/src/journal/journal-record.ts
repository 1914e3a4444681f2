import type { z } from 'zod';
import { parseOrThrow } from '@ibex/spec';
import { readJsonSync, removeDurableSync, writeJsonAtomicSync } from './atomic-file.js';

/**
 * The on-disk record of one change in progress (engine/journaled-change.ts): one JSON file,
 * written (temp file, fsync, rename, fsync of the directory) before the change's first step and
 * removed durably when it ends, so after a crash it is either there, whole, or gone.
 */
export interface ChangeJournal<R> {
  readonly path: string;
  read(): R | undefined;
  write(record: R): void;
  clear(): void;
}

/** A ChangeJournal in one file; with a schema, a damaged record is an error naming the file. */
export class JsonChangeJournal<R> implements ChangeJournal<R> {
  constructor(
    readonly path: string,
    private readonly schema?: z.ZodType<R>,
    private readonly mode = 0o600,
  ) {}

  read(): R | undefined {
    const v = readJsonSync(this.path);
    if (v === undefined) return undefined;
    return this.schema ? parseOrThrow(this.schema, v, this.path) : (v as R);
  }

  write(record: R): void {
    writeJsonAtomicSync(this.path, record, this.mode);
  }

  clear(): void {
    removeDurableSync(this.path);
  }
}
