import { CorruptJsonFile, readJsonSync, writeJsonAtomicSync } from '../journal/atomic-file.js';
import type { ConnectionStatus } from '../connection/connection.js';

/** status.json: what the running agent process last knew about its connection. */
export interface StatusFile extends ConnectionStatus {
  pid: number;
  bootId: string;
  startedAtMs: number;
  controller: string;
  running: boolean;
  updatedAtMs: number;
}

/**
 * Not a journal: written without fsync (each change of the connection rewrites it, and the first
 * two writes are on the way to the Hello), so after a power cut it may be stale or empty; the next
 * `ibex-agent run` rewrites it at once.
 */
export function writeStatusFile(path: string, s: StatusFile): void {
  writeJsonAtomicSync(path, s, 0o644, { durable: false });
}

/** undefined when missing, or unreadable as JSON (a power cut can leave it empty: it is not fsynced). */
export function readStatusFile(path: string): StatusFile | undefined {
  try {
    return readJsonSync(path) as StatusFile | undefined;
  } catch (err) {
    if (err instanceof CorruptJsonFile) return undefined;
    throw err;
  }
}

/** Whether the process that wrote the status file still runs. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
