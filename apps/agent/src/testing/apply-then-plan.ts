import assert from 'node:assert/strict';
import fc from 'fast-check';

/** What a pass reports per section (the engine's SectionResult, or `ibex-agent ... --json`). */
export interface PassSection {
  section: string;
  state: string;
  steps: ReadonlyArray<{ text?: string }>;
  error?: string;
}

/**
 * One capability under the property "apply, then plan is empty" (issue 16): whatever state the
 * device starts in, once an apply of a spec reports `in_sync`, a plan of the same spec right
 * after it must have no step. A step left over means the planner missed something observe
 * shows (the `lo` that stayed down), and verify (which plans again) would revert a good change.
 */
export interface ApplyThenPlanSubject<Start> {
  /** The varied starting states (and the spec each one is paired with). */
  starts: fc.Arbitrary<Start>;
  /** Puts the device into `start`; returns the desired state (sections) to apply. */
  arrange(start: Start): Promise<Record<string, unknown>>;
  apply(spec: Record<string, unknown>): Promise<PassSection[]>;
  plan(spec: Record<string, unknown>): Promise<PassSection[]>;
  /** After each run (whatever its outcome). */
  cleanup?(start: Start): Promise<void> | void;
}

const describePass = (p: readonly PassSection[]) => p.map((s) => `${s.section}: ${s.state}${s.error ? ` (${s.error})` : ''}${s.steps.length ? `\n  - ${s.steps.map((x) => x.text).join('\n  - ')}` : ''}`).join('\n');

/**
 * Runs the property `runs` times from states drawn with `seed` (fixed, so a failure is
 * reproduced by running the test again; fast-check shrinks it and prints the starting state).
 */
export async function assertApplyThenPlanIsEmpty<Start>(subject: ApplyThenPlanSubject<Start>, opts: { runs: number; seed: number }): Promise<void> {
  await fc.assert(
    fc.asyncProperty(subject.starts, async (start) => {
      try {
        const spec = await subject.arrange(start);
        const applied = await subject.apply(spec);
        assert.ok(applied.length > 0, 'the apply reported no section');
        assert.ok(
          applied.every((s) => s.state === 'in_sync'),
          `the apply did not bring every section in sync:\n${describePass(applied)}`,
        );
        const planned = await subject.plan(spec);
        assert.ok(planned.every((s) => s.state === 'in_sync' && s.steps.length === 0), `apply, then plan is not empty:\n${describePass(planned)}`);
      } finally {
        await subject.cleanup?.(start);
      }
    }),
    { numRuns: opts.runs, seed: opts.seed, endOnFailure: true },
  );
}
