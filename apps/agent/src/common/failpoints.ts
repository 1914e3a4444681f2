/**
 * Failpoints for crash tests. With `IBEX_AGENT_FAILPOINTS=name1,name2` in the environment the
 * agent SIGKILLs itself when it reaches one of the named points, so a test can prove that what
 * was journaled before the point survives and nothing is done twice after a restart. Without
 * the variable every point is inert (one Set lookup). The controller's failpoints
 * (apps/controller/src/common/failpoints.ts) behave the same: the variable is read on first use,
 * never at import, and the command line refuses an unknown name before any command runs
 * (failpointsProblem), since a typo would make a crash test pass vacuously.
 *
 *   job-accepted           a job's `accepted` phase is fsync'd, before `started` is sent or the job runs
 *   job-result-journaled   a job's result is fsync'd in jobs/<id>.json, before it is sent
 *   desired-written        a received DesiredState is fsync'd in desired.json, before reconciling
 *   intent-written         a section's backup + intent are fsync'd, before its first step runs
 *   files-before-rename    the files capability wrote and fsync'd a temp file, before renaming it into place
 *   state-report-journaled a StateReport is fsync'd in state.json, before it is sent
 *   network-before-ifup    the network files are replaced and the old config is down, before ifup
 *   awaiting-confirmation  a change that must be confirmed is applied and its intent marked awaiting, before it is reported
 *   openwrt-before-uci     the openwrt section wired the host side (links moved, shims made), before the UCI change
 *   chroot-extracted       a chroot's root filesystem is unpacked in its staging directory, before it is renamed into place
 *   chroot-mounted         a chroot mount step is done (the chroot has live mounts: /proc first), before the next step
 *   chroot-unmounted       a teardown stopped the chroot and unmounted everything below it, before deleting it
 *   recovered-before-report at start, sections were reverted (interrupted or never confirmed), before their `reverted` report is journaled
 *
 * Generations (one per step boundary of an upgrade or a switch; see capabilities/generations):
 *   gen-journaled          the operation is fsync'd in generations/journal.json, nothing on the volume changed yet
 *   gen-snapshotted        snapshots/<new>/@ exists (snapshot, empty subvolume or received stream), still writable
 *   gen-changed            the commands ran / the image is unpacked and fstab rendered in the new root
 *   gen-readonly           the new root is read-only
 *   gen-linked             links/<new links>/0..N are written
 *   gen-next-linked        next/current points at the new links directory, before the rename over `current`
 *   gen-switched           `current` was renamed over and its directory fsync'd, before the state/journal are updated
 *   gen-gc-deleted         GC deleted a generation's subvolume, before removing its directory (a half-deleted generation)
 *   gen-records-copied     the old generations records are copied (fsync'd) beside <data-dir>/generations, before the rename
 *   gen-records-moved      <data-dir>/generations is in place, before the old records directory is removed
 *
 * Jobs run at the console (ibex-agent job, ibex-agent generations):
 *   local-change-reported  the controller acknowledged a LocalChange, before the agent journals that
 */
export const failpointNames = [
  'job-accepted',
  'job-result-journaled',
  'desired-written',
  'intent-written',
  'files-before-rename',
  'state-report-journaled',
  'gen-journaled',
  'gen-snapshotted',
  'gen-changed',
  'gen-readonly',
  'gen-linked',
  'gen-next-linked',
  'gen-switched',
  'gen-gc-deleted',
  'gen-records-copied',
  'gen-records-moved',
  'local-change-reported',
  'network-before-ifup',
  'awaiting-confirmation',
  'openwrt-before-uci',
  'chroot-extracted',
  'chroot-mounted',
  'chroot-unmounted',
  'recovered-before-report',
] as const;
export type FailpointName = (typeof failpointNames)[number];

let armed: ReadonlySet<string> | undefined;

function armedSet(): ReadonlySet<string> {
  armed ??= new Set(
    (process.env.IBEX_AGENT_FAILPOINTS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  return armed;
}

export function failpoint(name: FailpointName): void {
  if (!armedSet().has(name)) return;
  process.stderr.write(`failpoint ${name}: killing the agent (SIGKILL)\n`);
  process.kill(process.pid, 'SIGKILL');
}

/** Why IBEX_AGENT_FAILPOINTS cannot be used (it names unknown failpoints), or undefined. */
export function failpointsProblem(): string | undefined {
  const unknown = [...armedSet()].filter((n) => !(failpointNames as readonly string[]).includes(n));
  return unknown.length ? `IBEX_AGENT_FAILPOINTS: unknown failpoint(s) ${unknown.map((n) => `"${n}"`).join(', ')}; known: ${failpointNames.join(', ')}` : undefined;
}
