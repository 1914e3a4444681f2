import { JobOutcome } from '@ibex/proto';
import type { FakeAgent, InboundOf } from './fake-agent.js';

export type Assignment = InboundOf<'assign'>;
/** What a simulated device does with a job: succeed (with this output), fail, or never answer. */
export type Reaction = { outcome: 'succeed'; output?: unknown; delayMs?: number } | { outcome: 'fail'; error: string; delayMs?: number } | { outcome: 'ignore' };

/**
 * Plays a device's job runner on a FakeAgent: each job id is executed once (as the real
 * agent's journal does; an assignment sent again is answered with the same result), and every
 * execution is counted so tests can prove "exactly once".
 */
export class JobResponder {
  /** jobId -> times this device executed it. */
  readonly executed = new Map<string, number>();
  readonly jobs: Assignment[] = [];
  private seen = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly results = new Map<string, Reaction>();

  constructor(
    readonly agent: FakeAgent,
    private readonly react: (job: Assignment) => Reaction,
  ) {
    this.timer = setInterval(() => this.poll(), 15);
  }

  private poll(): void {
    const assigns = this.agent.received.filter((m) => m.$case === 'assign');
    for (; this.seen < assigns.length; this.seen++) {
      const a = assigns[this.seen]!.value as Assignment;
      let r = this.results.get(a.jobId);
      if (!r) {
        r = this.react(a);
        this.results.set(a.jobId, r);
        this.jobs.push(a);
        if (r.outcome !== 'ignore') this.executed.set(a.jobId, (this.executed.get(a.jobId) ?? 0) + 1);
      }
      this.answer(a, r);
    }
  }

  private answer(a: Assignment, r: Reaction): void {
    if (r.outcome === 'ignore') return;
    const send = () => {
      const base = { jobId: a.jobId, attempt: a.attempt };
      this.agent.send({ $case: 'jobUpdate', value: { ...base, updateId: `${a.jobId}:${a.attempt}:started:0`, update: { $case: 'started', value: { startedAtMs: Date.now() } } } });
      const result =
        r.outcome === 'succeed'
          ? { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson: r.output === undefined ? '' : JSON.stringify(r.output), error: '', retryable: false, finishedAtMs: Date.now() }
          : { outcome: JobOutcome.JOB_OUTCOME_FAILED, outputJson: '', error: r.error, retryable: false, finishedAtMs: Date.now() };
      this.agent.send({ $case: 'jobUpdate', value: { ...base, updateId: `${a.jobId}:${a.attempt}:result:0`, update: { $case: 'result', value: result } } });
    };
    if (r.delayMs) setTimeout(send, r.delayMs);
    else send();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** A state.apply output with every section in sync. */
export const appliedOutput = (revision: number, sections: string[] = ['files']) => ({ revision, sections: sections.map((section) => ({ section, state: 'in_sync' })) });
