/**
 * Failpoints for crash tests, as in the agent (apps/agent/src/common/failpoints.ts). With
 * `IBEX_CONTROLLER_FAILPOINTS=name1,name2` the controller SIGKILLs itself when it reaches a named
 * point, so end-to-end tests can prove that a crash at the most dangerous moments loses nothing.
 * Without the variable every point is inert. The variable is read on first use, never at import;
 * main.ts refuses an unknown name before starting (failpointsProblem), since a typo would make a
 * crash test pass vacuously.
 *
 *   job-result-before-commit  a job result's transaction ran but has not committed
 *   job-result-before-ack     a job result is committed, the agent's Ack not yet sent
 *   image-build-mid-archive   an image build is half way through writing its archive
 *   rollout-dispatch-before-commit  a rollout tick inserted its devices' jobs, not yet committed
 *   rollout-dispatch-after-commit   a rollout tick's jobs are committed, the devices not yet told
 */
export const controllerFailpoints = ['job-result-before-commit', 'job-result-before-ack', 'image-build-mid-archive', 'rollout-dispatch-before-commit', 'rollout-dispatch-after-commit'] as const;
export type ControllerFailpoint = (typeof controllerFailpoints)[number];

let armed: ReadonlySet<string> | undefined;

function armedSet(): ReadonlySet<string> {
  armed ??= new Set(
    (process.env['IBEX_CONTROLLER_FAILPOINTS'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  return armed;
}

export function failpoint(name: ControllerFailpoint): void {
  if (!armedSet().has(name)) return;
  process.stderr.write(`failpoint ${name}: killing the controller (SIGKILL)\n`);
  process.kill(process.pid, 'SIGKILL');
}

/** Why IBEX_CONTROLLER_FAILPOINTS cannot be used (it names unknown failpoints), or undefined. */
export function failpointsProblem(): string | undefined {
  const unknown = [...armedSet()].filter((n) => !(controllerFailpoints as readonly string[]).includes(n));
  return unknown.length ? `IBEX_CONTROLLER_FAILPOINTS: unknown failpoint(s) ${unknown.map((n) => `"${n}"`).join(', ')}; known: ${controllerFailpoints.join(', ')}` : undefined;
}
