/**
 * Failpoints for crash tests (the agent has the same mechanism). With
 * `IBEX_CONTROLLER_FAILPOINTS=name1,name2` the controller SIGKILLs itself when it reaches a named
 * point, so end-to-end tests can prove that a crash at the most dangerous moments loses nothing.
 * Without the variable every point is inert.
 *
 *   job-result-before-commit  a job result's transaction ran but has not committed
 *   job-result-before-ack     a job result is committed, the agent's Ack not yet sent
 */
export const controllerFailpoints = ['job-result-before-commit', 'job-result-before-ack'] as const;
export type ControllerFailpoint = (typeof controllerFailpoints)[number];

const armed = new Set(
  (process.env['IBEX_CONTROLLER_FAILPOINTS'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
for (const name of armed) {
  if (!(controllerFailpoints as readonly string[]).includes(name)) {
    throw new Error(`IBEX_CONTROLLER_FAILPOINTS: unknown failpoint "${name}"; known: ${controllerFailpoints.join(', ')}`);
  }
}

export function failpoint(name: ControllerFailpoint): void {
  if (!armed.has(name)) return;
  process.stderr.write(`failpoint ${name}: killing the controller (SIGKILL)\n`);
  process.kill(process.pid, 'SIGKILL');
}
