import type { PlanResult } from '@ibex/client';
import type { Colors } from './output.js';

/** A unified diff with added lines green, removed red and hunk headers cyan (plain without colours). */
export function colourDiff(diff: string, c: Colors): string {
  return diff
    .split('\n')
    .map((line) => {
      if (line.startsWith('+++') || line.startsWith('---')) return c.bold(line);
      if (line.startsWith('@@')) return c.cyan(line);
      if (line.startsWith('+')) return c.green(line);
      if (line.startsWith('-')) return c.red(line);
      return line;
    })
    .join('\n');
}

const STATE_COLOUR = { in_sync: 'green', pending: 'yellow', unsupported: 'magenta', failed: 'red' } as const;

/** A plan as people read it: per section its state, each step, its diff and commands. */
export function renderPlan(plan: PlanResult, c: Colors): string {
  const out: string[] = [];
  const what = plan.proposed ? `the proposed spec against the device (its desired revision is ${plan.revision})` : `desired revision ${plan.revision} against the device`;
  out.push(c.bold(`Plan: ${what}`));
  if (!plan.sections.length) out.push('  (no sections)');
  for (const s of plan.sections) {
    const colour = STATE_COLOUR[s.state] ?? 'white';
    out.push('', `${c.bold(s.section)}: ${c[colour](s.state.replace('_', ' '))}${s.error ? ` - ${s.error}` : ''}`);
    if (!s.steps.length && s.state === 'in_sync') out.push('  nothing to change');
    for (const step of s.steps) {
      out.push(`  ${c.bold('*')} ${step.text}`);
      for (const argv of step.commands ?? []) out.push(`      $ ${argv.map(shellQuote).join(' ')}`);
      if (step.diff) out.push(colourDiff(step.diff.replace(/\n$/, ''), c).replace(/^/gm, '    '));
    }
  }
  const changes = plan.sections.reduce((n, s) => n + s.steps.length, 0);
  out.push('', changes ? `${changes} step${changes === 1 ? '' : 's'} would run; nothing was changed.` : 'Nothing would change.');
  return `${out.join('\n')}\n`;
}

/** Quotes a word for display only (commands run as argument vectors, never through a shell). */
function shellQuote(w: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}
