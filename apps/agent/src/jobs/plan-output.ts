import type { SectionResult, StepSummary } from '../engine/section-result.js';
import type { JobOutput } from './job-handlers.js';

/** All diffs of one plan together stay under this, so the result fits one message and one row. */
export const PLAN_DIFF_BUDGET_CHARS = 1024 * 1024;

/**
 * The output of a state.plan job. Diffs beyond the budget are dropped (in order) and the step
 * says so in `diffOmitted`; nothing else is cut.
 */
export function planOutput(r: { revision: number; proposed: boolean; sections: readonly SectionResult[] }, budget = PLAN_DIFF_BUDGET_CHARS): JobOutput<'state.plan'> {
  let left = budget;
  const bound = (step: StepSummary): StepSummary => {
    if (typeof step.diff !== 'string') return step;
    if (step.diff.length <= left) {
      left -= step.diff.length;
      return step;
    }
    const { diff, ...rest } = step;
    left = 0;
    return { ...rest, diffOmitted: `a ${diff.length}-character diff left out: this plan's diffs reached ${budget} characters; plan fewer sections` };
  };
  return {
    revision: r.revision,
    proposed: r.proposed,
    sections: r.sections.map((s) => {
      // A plan never applies, so it has no other states; anything else is a bug worth seeing.
      if (s.state !== 'in_sync' && s.state !== 'pending' && s.state !== 'unsupported' && s.state !== 'failed') throw new Error(`a plan reported section ${s.section} as ${s.state}`);
      return { section: s.section, state: s.state, ...(s.error ? { error: s.error } : {}), steps: s.steps.map(bound) };
    }),
  };
}
