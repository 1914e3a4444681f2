import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';

/** Delays before the 2nd and 3rd try of a revert step: long enough for a busy file or a link that is settling. */
const RETRY_DELAYS_MS = [200, 1000];

/** A revert that could not do every step, after retrying each: what is left, one entry per step. */
export class RevertIncomplete extends Error {
  override name = 'RevertIncomplete';
  constructor(
    what: string,
    readonly left: readonly string[],
  ) {
    super(`${what}: ${left.length} revert step(s) still failing after ${RETRY_DELAYS_MS.length + 1} tries each, left to do: ${left.join('; ')}`);
  }
}

/**
 * Runs the steps of a capability's revert: every step is tried (one failing does not stop the
 * next, so as much as possible is restored), each failing one is retried, and `finish` throws
 * RevertIncomplete naming what is left. The engine then keeps the change's record, so the next
 * start (or the next apply of the section) runs the revert again: a section is never left half
 * applied and forgotten. `essential: false` is for a step whose failure does not matter once
 * the others are done (bringing down a link that a later step brings up again).
 */
export class RevertSteps {
  private readonly left: string[] = [];

  constructor(
    private readonly what: string,
    private readonly log: Logger,
    private readonly delaysMs: readonly number[] = RETRY_DELAYS_MS,
  ) {}

  async step(text: string, fn: () => Promise<unknown>, opts: { essential?: boolean } = {}): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await fn();
        return true;
      } catch (err) {
        if (attempt >= this.delaysMs.length) {
          if (opts.essential === false) this.log.warn(`${this.what} revert: a step failed (not needed for the rest)`, { step: text, error: errorMessage(err) });
          else this.left.push(`${text} (${errorMessage(err)})`);
          return false;
        }
        this.log.warn(`${this.what} revert: a step failed, retrying`, { step: text, attempt: attempt + 1, error: errorMessage(err) });
        await sleep(this.delaysMs[attempt]!);
      }
    }
  }

  finish(): void {
    if (this.left.length) throw new RevertIncomplete(this.what, this.left);
  }
}
