import type { PlanResult } from '@ibex/client';
import { Badge, Diff, SECTION_TONE } from './ui';

/** A plan (state.plan result): per section its state, each step with its commands and diff. */
export function PlanView({ plan }: { plan: PlanResult }) {
  const steps = plan.sections.reduce((n, s) => n + s.steps.length, 0);
  return (
    <div className="planview">
      <p className={steps ? '' : 'ok-text'}>
        {steps ? `${steps} step${steps === 1 ? '' : 's'} would run to bring the device to revision ${plan.revision}. Nothing was changed.` : `The device matches revision ${plan.revision}: nothing would change.`}
      </p>
      {plan.sections.map((s) => (
        <div key={s.section} className="plan-section">
          <h3>
            {s.section} <Badge tone={SECTION_TONE[s.state] ?? 'muted'}>{s.state.replace('_', ' ')}</Badge>
          </h3>
          {s.error && <div className="note note-bad">{s.error}</div>}
          {s.steps.map((st, i) => (
            <div key={i} className="step">
              <div className="step-text">{st.text}</div>
              {st.commands?.map((c, k) => (
                <pre key={k} className="cmd">
                  $ {c.join(' ')}
                </pre>
              ))}
              {st.diff && <Diff text={st.diff} />}
            </div>
          ))}
        </div>
      ))}
    </div>
  );
}
