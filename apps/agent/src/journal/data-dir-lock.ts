import { linkSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDirSync, readJsonSync, writeFileAtomicSync } from './atomic-file.js';

/** Who holds the data dir. */
export interface LockHolder {
  pid: number;
  /** The holder's start time (field 22 of /proc/<pid>/stat): a reused pid is not the holder. */
  startTicks: string | null;
  /** What it runs: `run`, `apply`, `job generations.upgrade`, ... */
  command: string;
  sinceMs: number;
}

/** The start time of a process as the kernel counts it, or null when it is gone (or /proc is not there). */
function startTicks(pid: number | 'self'): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function alive(h: LockHolder): boolean {
  const now = startTicks(h.pid);
  return now !== null && (h.startTicks === null || now === h.startTicks);
}

/**
 * One process at a time changes the device through a data dir: `ibex-agent run` and the console
 * commands that change something (apply, job, generations) hold `<data-dir>/agent.lock` while
 * they run, since the generations lock, the section intents and the job journal are shared and
 * guarded only in-process. The lock file names its holder (pid and start time); a holder that is
 * gone (killed, the device rebooted) leaves a stale file, which the next process takes over.
 */
export class DataDirLock {
  private constructor(
    private readonly path: string,
    private readonly me: LockHolder,
  ) {}

  /** Takes the lock, or returns the live holder that has it. */
  static acquire(dataDir: string, command: string): DataDirLock | LockHolder {
    ensureDirSync(dataDir);
    const path = join(dataDir, 'agent.lock');
    const me: LockHolder = { pid: process.pid, startTicks: startTicks('self'), command, sinceMs: Date.now() };
    const mine = join(dataDir, `.agent.lock.${process.pid}`);
    writeFileAtomicSync(mine, JSON.stringify(me) + '\n', 0o644);
    try {
      // Two tries: the second after removing a stale holder's file. link() fails if the lock exists.
      for (let i = 0; i < 2; i++) {
        try {
          linkSync(mine, path);
          return new DataDirLock(path, me);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const holder = readHolder(path);
        if (holder && alive(holder)) return holder;
        rmSync(path, { force: true });
      }
      const holder = readHolder(path);
      if (holder) return holder;
      throw new Error(`could not take ${path}; try again`);
    } finally {
      rmSync(mine, { force: true });
    }
  }

  /** Gives the lock back (only if it is still ours). */
  release(): void {
    const h = readHolder(this.path);
    if (h?.pid === this.me.pid && h.sinceMs === this.me.sinceMs) rmSync(this.path, { force: true });
  }
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const v = readJsonSync(path) as Partial<LockHolder> | undefined;
    return v && typeof v.pid === 'number' ? { pid: v.pid, startTicks: v.startTicks ?? null, command: String(v.command ?? '?'), sinceMs: Number(v.sinceMs ?? 0) } : undefined;
  } catch {
    // A damaged lock file (a crash while it was written cannot make one: it is linked whole) is stale.
    return undefined;
  }
}

/** Why a command cannot run now, and what to do. */
export function lockRefusal(command: string, dataDir: string, h: LockHolder): string {
  const since = new Date(h.sinceMs).toISOString();
  if (h.command === 'run') {
    return `ibex-agent ${command}: an agent (pid ${h.pid}) is running with data dir ${dataDir} (since ${since}); stop it first (rc-service ibex-agent stop, systemctl stop ibex-agent), or have the controller run the job`;
  }
  return `ibex-agent ${command}: ibex-agent ${h.command} (pid ${h.pid}, since ${since}) is using the data dir ${dataDir}; wait until it ends`;
}
