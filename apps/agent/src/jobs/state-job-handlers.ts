import type { Facts } from '@ibex/spec';
import type { SectionResult } from '../engine/section-result.js';
import { JobFailure, type JobHandlers } from './job-handlers.js';
import { boundDiffs, planOutput } from './plan-output.js';

/** The desired-state passes the state jobs ask for (agent/desired-state-manager.ts). */
export interface StatePasses {
  runNow(opts: { sections?: string[]; dryRun: boolean; signal: AbortSignal }): Promise<{ revision: number; sections: SectionResult[] }>;
  planNow(opts: { spec?: Record<string, unknown>; sections?: string[]; signal: AbortSignal }): Promise<{ revision: number; proposed: boolean; sections: SectionResult[] }>;
}

type StateJob = 'facts.collect' | 'state.apply' | 'state.plan';

/** The handlers of the jobs about facts and the desired state. */
export function stateJobHandlers(passes: StatePasses, collectFacts: () => Promise<Facts>): Pick<JobHandlers, StateJob> {
  return {
    'facts.collect': async (_params, ctx) => {
      ctx.progress(10, 'collecting facts');
      const facts = await collectFacts();
      ctx.log('info', `collected facts: ${facts.interfaces.length} interfaces, ${facts.filesystems.length} filesystems`);
      return facts;
    },
    'state.apply': async (params, ctx) => {
      ctx.progress(0, params.dryRun ? 'planning' : 'reconciling');
      const r = await passes.runNow({ sections: params.sections, dryRun: params.dryRun, signal: ctx.signal });
      for (const s of r.sections) ctx.log(s.error ? 'warn' : 'info', `${s.section}: ${s.state}${s.steps.length ? `, ${s.steps.length} step(s)` : ''}${s.error ? `: ${s.error}` : ''}`);
      const output = {
        revision: r.revision,
        sections: boundDiffs(r.sections).map((s) => ({ section: s.section, state: s.state, ...(s.error ? { error: s.error } : {}), steps: s.steps })),
      };
      const bad = r.sections.filter((s) => s.state === 'failed' || s.state === 'reverted');
      if (bad.length) throw new JobFailure(`section(s) not applied: ${bad.map((s) => `${s.section} (${s.state}: ${s.error})`).join('; ')}`, output);
      return output;
    },
    // A dry run succeeds when it could plan: a section it could not observe is `failed` in the output.
    'state.plan': async (params, ctx) => {
      ctx.progress(0, params.spec ? 'planning a proposed desired state' : 'planning the current desired state');
      const r = await passes.planNow({ spec: params.spec as Record<string, unknown> | undefined, sections: params.sections, signal: ctx.signal });
      for (const s of r.sections) ctx.log(s.error ? 'warn' : 'info', `${s.section}: ${s.state}${s.steps.length ? `, ${s.steps.length} step(s) would run` : ''}${s.error ? `: ${s.error}` : ''}`);
      return planOutput(r);
    },
  };
}
