import { readJsonSync, writeJsonAtomicSync } from '../journal/atomic-file.js';
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

export function writeStatusFile(path: string, s: StatusFile): void {
  writeJsonAtomicSync(path, s, 0o644);
}

export function readStatusFile(path: string): StatusFile | undefined {
  return readJsonSync(path) as StatusFile | undefined;
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
