import type { Facts as ProtoFacts } from '@ibex/proto';
import type { Facts } from '@ibex/spec';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { collectFacts, toProtoFacts } from './facts-collect.js';
import { FilesystemSizes } from './filesystem-sizes.js';
import { type GenerationsCollector, GenerationsFacts } from './generations-facts.js';

export interface FactsReporterDeps {
  root: string;
  agentVersion: string;
  /** The generations inventory (undefined: no generations layout). */
  collectGenerations: GenerationsCollector;
  /** Sends a FactsReport if connected; false when the stream is down. */
  send: (facts: ProtoFacts) => boolean;
  log: Logger;
}

/** Facts without the values that change every time they are read. */
function stableFacts(f: Facts): string {
  return JSON.stringify({
    ...f,
    collectedAtMs: 0,
    uptimeSeconds: 0,
    filesystems: f.filesystems.map((x) => ({ ...x, usedBytes: 0 })),
    generations: f.generations ? { ...f.generations, collectedAtMs: 0 } : undefined,
  });
}

/**
 * The facts the controller sees: in each Hello, then in a FactsReport whenever they changed
 * (looked at every drift-check interval) or when something that changed the device asks for one
 * at once (`report(true)`). Each collection reads the generations inventory afresh.
 */
export class FactsReporter {
  /** One per process: remembers filesystems whose statfs hangs, so they are not asked again meanwhile. */
  private readonly sizes: FilesystemSizes;
  private readonly generations: GenerationsFacts;
  /** What the controller last got (stableFacts). */
  private lastSent?: string;
  /** Collected in prepareHello for the next Hello. */
  private forHello?: Facts;
  /** Reports one at a time, so an older inventory is never sent after a newer one. */
  private chain: Promise<unknown> = Promise.resolve();
  private timer?: NodeJS.Timeout;

  constructor(private readonly deps: FactsReporterDeps) {
    this.sizes = new FilesystemSizes({ log: deps.log });
    this.generations = new GenerationsFacts(deps.collectGenerations, deps.log);
  }

  /** Facts with a freshly collected generations inventory. */
  async collect(): Promise<Facts> {
    return collectFacts({ root: this.deps.root, agentVersion: this.deps.agentVersion, generations: await this.generations.refresh(), sizes: this.sizes });
  }

  /** Before a Hello (which is built synchronously): collects its facts. A failure is logged; that Hello then cannot be sent. */
  async prepareHello(): Promise<void> {
    this.forHello = await this.collect().catch((err) => {
      this.deps.log.warn('collecting facts failed', { error: errorMessage(err) });
      return undefined;
    });
  }

  /** The facts for the Hello being built; from now on they are what the controller has. */
  helloFacts(): ProtoFacts {
    const facts = this.forHello;
    if (!facts) throw new Error('no facts to send in the Hello (collecting them failed)');
    this.lastSent = stableFacts(facts);
    return toProtoFacts(facts);
  }

  /**
   * Sends a FactsReport with freshly collected facts: `always`, or only when they differ from
   * what the controller has. Resolves whether one was sent (false: unchanged, the stream is
   * down, or collecting failed; the next Hello carries fresh facts anyway).
   */
  report(always: boolean): Promise<boolean> {
    const run = this.chain.then(async () => {
      try {
        const facts = await this.collect();
        const stable = stableFacts(facts);
        if (!always && stable === this.lastSent) return false;
        const sent = this.deps.send(toProtoFacts(facts));
        if (sent) this.lastSent = stable;
        return sent;
      } catch (err) {
        this.deps.log.warn('collecting facts failed', { error: errorMessage(err) });
        return false;
      }
    });
    this.chain = run;
    return run;
  }

  /** Looks for changed facts every `intervalMs`. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.report(false), intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
