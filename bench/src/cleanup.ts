/**
 * What the run must undo (controller process, database, Redis keys), undone once, last added
 * first, whether the run succeeded, failed or was interrupted. Each step is bounded in time so
 * a dead Postgres or Redis cannot keep the harness from exiting.
 */
export class Cleanup {
  private readonly steps: { what: string; run: () => Promise<unknown> }[] = [];
  private running?: Promise<void>;

  constructor(private readonly log: (line: string) => void) {}

  add(what: string, run: () => Promise<unknown>): void {
    this.steps.push({ what, run });
  }

  run(timeoutMs = 20_000): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            step.run(),
            new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`did not finish within ${timeoutMs} ms`)), timeoutMs))),
          ]);
        } catch (err) {
          this.log(`cleanup: could not ${step.what}: ${(err as Error).message}`);
        } finally {
          clearTimeout(timer);
        }
      }
    })();
    return this.running;
  }
}
