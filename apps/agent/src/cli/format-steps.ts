import type { StepSummary } from '../engine/section-result.js';

/** An argument as a reader would type it in a POSIX shell (display only: nothing runs a shell). */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/**
 * The details of a step that a dry run shows under its line: each command as `$ argv...`, then
 * the file diff, indented so the section and step lines stay easy to scan.
 */
export function formatStepDetails(step: StepSummary, indent = '    '): string {
  let out = '';
  if (Array.isArray(step.commands)) {
    for (const argv of step.commands) if (Array.isArray(argv)) out += `${indent}$ ${argv.map((a) => shellQuote(String(a))).join(' ')}\n`;
  }
  if (typeof step.diff === 'string' && step.diff) {
    for (const line of step.diff.replace(/\n$/, '').split('\n')) out += `${indent}${line}\n`;
  }
  if (typeof step.diffOmitted === 'string') out += `${indent}(${step.diffOmitted})\n`;
  return out;
}
