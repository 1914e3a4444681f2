import { execFileSync } from 'node:child_process';

/** Pids of the processes on this machine whose whole command line is exactly `commandLine`. */
export function pidsWithCommandLine(commandLine: string): number[] {
  return execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([, ...args]) => args.join(' ') === commandLine)
    .map(([pid]) => Number(pid));
}

/** SIGKILLs every process whose command line is exactly `commandLine` (test cleanup). */
export function killWithCommandLine(commandLine: string): void {
  for (const pid of pidsWithCommandLine(commandLine)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}
