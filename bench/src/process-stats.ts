import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on every usual Linux). */
function clockTicks(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

export interface ProcessSample {
  atMs: number;
  /** VmRSS: resident now. */
  rssMb: number;
  /** VmHWM: the highest resident size the process ever had. */
  peakRssMb: number;
  /** utime + stime so far, in seconds. */
  cpuS: number;
}

/**
 * Memory and CPU of another process, from /proc/<pid>/status and /proc/<pid>/stat. CPU % is
 * the CPU time used between two samples over the wall time between them (100 = one full core).
 */
export class ProcessMonitor {
  private readonly hz = clockTicks();

  constructor(readonly pid: number) {}

  sample(): ProcessSample | undefined {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      // Fields after the command name, which is in parentheses and may contain spaces.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime and stime are fields 14 and 15 of stat; fields[0] here is field 3 (state).
      const ticks = Number(fields[11]) + Number(fields[12]);
      return { atMs: Date.now(), rssMb: kbField(status, 'VmRSS') / 1024, peakRssMb: kbField(status, 'VmHWM') / 1024, cpuS: ticks / this.hz };
    } catch {
      return undefined; // the process is gone
    }
  }
}

/** CPU % of one core between two samples. */
export function cpuPercent(from: ProcessSample, to: ProcessSample): number {
  const wall = (to.atMs - from.atMs) / 1000;
  return wall > 0 ? ((to.cpuS - from.cpuS) / wall) * 100 : 0;
}

function kbField(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${name} in /proc status`);
  return Number(m[1]);
}
