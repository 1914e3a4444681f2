import { errorMessage } from '../common/errors.js';
import { type FailpointName, failpoint } from '../common/failpoints.js';
import type { Logger } from '../common/log.js';
import type { ChangeJournal } from '../journal/journal-record.js';

/**
 * The agent's one crash-safety path (apps/agent/README.md, "Changes that survive a crash").
 * Every change to the device that a crash could leave half done is a JournaledChange:
 *
 *   1. before it: everything that can fail without touching the device (validation, a backup,
 *      a verified download), so a bad input changes nothing;
 *   2. its record is journaled (write, fsync, rename) before the first step;
 *   3. the steps run in order (a failpoint after each one for the crash tests); one failing, or
 *      `verify` finding the result wrong, runs `undo` at once and clears the record;
 *   4. `commit`, when the change has one: the single step after which it holds (the rename over
 *      a generations volume's `current`). It is never undone: if it fails the record stays;
 *   5. the caller ends it: clears the record, or keeps it flagged while the change awaits
 *      confirmation (engine/confirmations.ts).
 *
 * At start, before anything else touches the device, each kind of change recovers the records
 * a crash left (Recoverable): it finishes what passed its commit point and undoes the rest.
 * A section apply (engine.ts) and a generations upgrade or switch are such changes.
 */
export interface JournaledChange<R> {
  /** For logs: `section files`, `generations upgrade to <id>`. */
  readonly what: string;
  readonly journal: ChangeJournal<R>;
  readonly record: R;
  /** The crash tests' point once the record is on disk, before the first step. */
  readonly journaled?: FailpointName;
  readonly steps: readonly ChangeStep[];
  /** After the steps: undefined when the result is right, else why not (then it is undone). */
  verify?(): Promise<string | undefined>;
  /** Takes back what the steps did, whichever of them ran. The record is cleared once it succeeds. */
  undo(): Promise<void>;
  readonly commit?: ChangeStep;
}

export interface ChangeStep {
  /** What it does, for logs and errors. */
  readonly text: string;
  run(): Promise<void>;
  /** The crash tests' point once the step is done. */
  readonly failpoint?: FailpointName;
}

/**
 * A step (or the verify) failed. `undoError` is set when undoing failed too: the record then
 * stays on disk and recovery at the next start tries again.
 */
export class ChangeFailed extends Error {
  override name = 'ChangeFailed';
  constructor(
    message: string,
    override readonly cause: unknown,
    readonly undoError?: unknown,
  ) {
    super(message);
  }
}

/**
 * Runs a change (steps 2-4 above). Throws ChangeFailed when a step or the verify failed (after
 * undoing), and the commit step's own error when that failed (nothing is undone then).
 * `signal` is looked at before each step; a cancelled change is undone like a failed one.
 */
export async function runJournaled<R>(c: JournaledChange<R>, opts: { log: Logger; signal?: AbortSignal }): Promise<void> {
  c.journal.write(c.record);
  if (c.journaled) failpoint(c.journaled);
  let failure: { message: string; cause: unknown } | undefined;
  for (const [i, step] of c.steps.entries()) {
    try {
      opts.signal?.throwIfAborted();
      await step.run();
    } catch (err) {
      failure = { message: `step ${i + 1} of ${c.steps.length} (${step.text}) failed: ${opts.signal?.aborted ? 'cancelled' : errorMessage(err)}`, cause: err };
      break;
    }
    if (step.failpoint) failpoint(step.failpoint);
  }
  if (!failure && c.verify) {
    const wrong = await c.verify();
    if (wrong !== undefined) failure = { message: `verify failed: ${wrong}`, cause: new Error(wrong) };
  }
  if (failure) {
    opts.log.warn(`${c.what} failed, undoing it`, { error: failure.message });
    try {
      await c.undo();
    } catch (undoError) {
      throw new ChangeFailed(failure.message, failure.cause, undoError);
    }
    c.journal.clear();
    throw new ChangeFailed(failure.message, failure.cause);
  }
  if (c.commit) {
    await c.commit.run();
    if (c.commit.failpoint) failpoint(c.commit.failpoint);
  }
}

/** What recovery did with one record a crash left. */
export interface RecoveredChange {
  /** What was interrupted, for logs: `section network`, `generations upgrade`. */
  what: string;
  outcome: 'finished' | 'undone';
  /** A sentence for logs and reports. */
  reason: string;
  /** The desired-state section the change belonged to (a section apply). */
  section?: string;
  /** The change was applied and awaited confirmation when the agent died: it was reverted. */
  unconfirmed?: boolean;
}

/** A kind of journaled change, as seen at start: finishes or undoes every record a crash left. */
export interface Recoverable {
  readonly name: string;
  recover(): Promise<RecoveredChange[]>;
}

/**
 * At start, before anything else touches the device: every kind of change recovers in order
 * (each logs what it did). A Recoverable that throws stops the start (the record stays for the
 * next one); a kind that may go on without recovering (generations: each of its operations
 * recovers first) catches its own errors.
 */
export async function recoverAll(kinds: readonly Recoverable[]): Promise<RecoveredChange[]> {
  const all: RecoveredChange[] = [];
  for (const k of kinds) all.push(...(await k.recover()));
  return all;
}
