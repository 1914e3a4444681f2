import type { SectionResult, StepSummary } from '../engine/section-result.js';
import type { JobOutput } from './job-handlers.js';

/**
 * All diffs of one job's output together stay under this many characters of JSON. The
 * controller refuses an `output_json` over 1 MiB (ending the stream, and the agent re-sends the
 * journaled result), so half of it is left for the rest: JSON escaping of the diffs (counted
 * here), step texts and paths.
 */
export const PLAN_DIFF_BUDGET_CHARS = 512 * 1024;

/**
 * The sections' steps with diffs beyond the budget dropped (in order); such a step says so in
 * `diffOmitted`. Nothing else is cut. For state.plan and state.apply (whose dry runs show diffs too).
 */
export function boundDiffs<S extends { steps: readonly StepSummary[] }>(sections: readonly S[], budget = PLAN_DIFF_BUDGET_CHARS): (S & { steps: StepSummary[] })[] {
  let left = budget;
  const bound = (step: StepSummary): StepSummary => {
    if (typeof step.diff !== 'string') return step;
    const size = JSON.stringify(step.diff).length;
    if (size <= left) {
      left -= size;
      return step;
    }
    const { diff, ...rest } = step;
    left = 0;
    return { ...rest, diffOmitted: `a ${diff.length}-character diff left out: this plan's diffs reached ${budget} characters; plan fewer sections` };
  };
  return sections.map((s) => ({ ...s, steps: s.steps.map(bound) }));
}

/** The output of a state.plan job, its diffs bounded (boundDiffs). */
export function planOutput(r: { revision: number; proposed: boolean; sections: readonly SectionResult[] }, budget = PLAN_DIFF_BUDGET_CHARS): JobOutput<'state.plan'> {
  return {
    revision: r.revision,
    proposed: r.proposed,
    sections: boundDiffs(r.sections, budget).map((s) => {
      // A plan never applies, so it has no other states; anything else is a bug worth seeing.
      if (s.state !== 'in_sync' && s.state !== 'pending' && s.state !== 'unsupported' && s.state !== 'failed') throw new Error(`a plan reported section ${s.section} as ${s.state}`);
      return { section: s.section, state: s.state, ...(s.error ? { error: s.error } : {}), steps: s.steps };
    }),
  };
}
