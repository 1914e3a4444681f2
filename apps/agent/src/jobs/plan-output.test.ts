import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jobTypes } from '@ibex/spec';
import type { SectionResult } from '../engine/section-result.js';
import { boundDiffs, planOutput } from './plan-output.js';

const step = (n: number, diff?: string) => ({ action: 'write', text: `write /f${n}`, ...(diff !== undefined ? { diff } : {}) });
const section = (name: string, state: SectionResult['state'], steps: SectionResult['steps']): SectionResult => ({ section: name, state, steps, observedAtMs: 1 });

describe('state.plan output', () => {
  it('keeps diffs until the budget is spent, then leaves the rest out and says so', () => {
    const out = planOutput(
      { revision: 2, proposed: true, sections: [section('files', 'pending', [step(1, 'a'.repeat(60)), step(2, 'b'.repeat(60)), step(3, 'c'), step(4)])] },
      100,
    );
    const steps = out.sections[0]!.steps;
    assert.equal(steps[0]!.diff, 'a'.repeat(60));
    assert.equal(steps[1]!.diff, undefined);
    assert.match(String(steps[1]!['diffOmitted']), /a 60-character diff left out: this plan's diffs reached 100 characters/);
    assert.equal(steps[2]!.diff, undefined, 'later diffs stay out too, so the output says where it was cut');
    assert.deepEqual(steps[3], step(4));
    // What the controller checks the result with.
    assert.ok(jobTypes['state.plan'].output.safeParse(out).success);
  });

  it('keeps the whole output under the 1 MiB the controller accepts as output_json, counting JSON escaping', () => {
    // 40 files of 60 KiB each, full of characters JSON escapes: 2.4 MiB of diffs, ~4.8 MiB as JSON.
    const diff = '"\\\n'.repeat(20 * 1024);
    const steps = Array.from({ length: 40 }, (_, i) => step(i, diff));
    const out = planOutput({ revision: 1, proposed: false, sections: [section('files', 'pending', steps)] });
    assert.ok(JSON.stringify(out).length <= 1024 * 1024, `${JSON.stringify(out).length} characters`);
    assert.ok(out.sections[0]!.steps[0]!.diff, 'the first diffs are kept');
    assert.ok(out.sections[0]!.steps[39]!['diffOmitted']);
    // state.apply (dry runs show diffs) is bounded the same way, keeping everything else.
    const applied = boundDiffs([{ ...section('files', 'drifted', steps) }]);
    assert.equal(applied[0]!.state, 'drifted');
    assert.ok(JSON.stringify(applied).length <= 1024 * 1024);
  });

  it('passes plan states through with their errors and refuses states a plan cannot have', () => {
    const out = planOutput({ revision: 0, proposed: false, sections: [{ ...section('network', 'failed', []), error: 'ifquery: not found' }, section('x', 'unsupported', [])] });
    assert.deepEqual(out.sections, [
      { section: 'network', state: 'failed', error: 'ifquery: not found', steps: [] },
      { section: 'x', state: 'unsupported', steps: [] },
    ]);
    assert.throws(() => planOutput({ revision: 1, proposed: false, sections: [section('files', 'applying', [])] }), /a plan reported section files as applying/);
  });
});
