import type { JobUpdate } from '@ibex/proto';

export interface ProgressOutput {
  /** JSON lines on stdout, one event per update (--json). */
  json: boolean;
  out: (text: string) => void;
  err: (text: string) => void;
  /** Set when stderr is a terminal: the progress bar is redrawn in place. */
  terminal?: { columns: number };
}

const BAR = 24;

/**
 * Shows a job's updates as it runs: with `json`, one JSON object per line on stdout
 * (`{"event":"progress","percent":40,"message":"..."}`, `{"event":"log",...}`); on a terminal a
 * progress bar on stderr, redrawn in place, with log lines printed above it; otherwise (a pipe,
 * a log file) one line per progress message and per log line on stderr. The result is the
 * command's to print.
 */
export class JobProgress {
  private bar = '';
  private lastMessage = '';
  private lastPercent = -1;

  constructor(private readonly o: ProgressOutput) {}

  update(u: JobUpdate): void {
    const x = u.update;
    if (!x || x.$case === 'result') return;
    if (this.o.json) {
      if (x.$case === 'started') this.event({ event: 'started', jobId: u.jobId, atMs: x.value.startedAtMs });
      if (x.$case === 'progress') this.event({ event: 'progress', percent: x.value.percent, message: x.value.message });
      if (x.$case === 'log') for (const l of x.value.lines) this.event({ event: 'log', level: l.level, text: l.text, atMs: l.tsMs });
      return;
    }
    if (x.$case === 'progress') {
      const { percent, message } = x.value;
      if (percent === this.lastPercent && message === this.lastMessage) return;
      this.lastPercent = percent;
      this.lastMessage = message;
      if (this.o.terminal) this.draw(this.barLine(percent, message));
      else this.o.err(`[${String(percent).padStart(3)}%] ${message}\n`);
    }
    if (x.$case === 'log') {
      for (const l of x.value.lines) {
        // The generations jobs log each progress message too: shown once.
        if (l.text === this.lastMessage && l.level === 'info') continue;
        this.above(`${l.level}: ${l.text}\n`);
      }
    }
  }

  /** Clears the bar; what follows is printed on clean lines. */
  done(): void {
    if (this.o.terminal && this.bar) this.o.err('\r\x1b[2K');
    this.bar = '';
  }

  private event(e: Record<string, unknown>): void {
    this.o.out(JSON.stringify(e) + '\n');
  }

  private barLine(percent: number, message: string): string {
    const filled = Math.round((Math.max(0, Math.min(100, percent)) / 100) * BAR);
    const head = `[${'#'.repeat(filled)}${'.'.repeat(BAR - filled)}] ${String(percent).padStart(3)}% `;
    const room = Math.max(0, (this.o.terminal?.columns ?? 80) - head.length - 1);
    return head + (message.length > room ? `${message.slice(0, Math.max(0, room - 3))}...` : message);
  }

  private draw(line: string): void {
    this.bar = line;
    this.o.err(`\r\x1b[2K${line}`);
  }

  /** A line of the agent's own log (stderr), printed above the bar. */
  logLine(line: string): void {
    this.above(line);
  }

  /** A line above the bar (the bar is drawn again under it). */
  private above(text: string): void {
    if (!this.o.terminal || !this.bar) return this.o.err(text);
    this.o.err(`\r\x1b[2K${text}${this.bar}`);
  }
}
