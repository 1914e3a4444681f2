import type { AgentMessage, JobUpdate } from '@ibex/proto';
import type { ArtifactEndpoint } from '../artifacts/artifact-endpoint.js';
import { generationsRecovery } from '../capabilities/generations/generations-journal.js';
import { generationsJobHandlers } from '../capabilities/generations/generations-jobs.js';
import { imageJobHandlers } from '../capabilities/image/image-jobs.js';
import type { GenerationsRoot } from '../capabilities/generations/generations-root.js';
import { collectGenerationsInventory } from '../capabilities/generations/inventory.js';
import { openGenerationsRoot } from '../capabilities/generations/records-migration.js';
import { TrialMonitor } from '../capabilities/generations/trial-monitor.js';
import { failpoint } from '../common/failpoints.js';
import type { Logger } from '../common/log.js';
import type { Config } from '../config/config.js';
import { Engine } from '../engine/engine.js';
import { type Recoverable, type RecoveredChange, recoverAll } from '../engine/journaled-change.js';
import { FactsReporter } from '../facts/facts-reporter.js';
import type { GenerationsCollector } from '../facts/generations-facts.js';
import { DataDir } from '../journal/data-dir.js';
import { JobStore } from '../journal/job-store.js';
import { StateStore } from '../journal/state-store.js';
import type { JobHandlers } from '../jobs/job-handlers.js';
import { JobRunner } from '../jobs/job-runner.js';
import { stateJobHandlers } from '../jobs/state-job-handlers.js';
import { NodeSystemAdapter } from '../system/node-system-adapter.js';
import { AGENT_VERSION } from '../version.js';
import { DesiredStateManager } from './desired-state-manager.js';
import { agentRegistry } from './registry.js';

export interface DeviceServicesOptions {
  cfg: Config;
  log: Logger;
  /** Random per process: a job journaled by another process and not finished was interrupted. */
  bootId: string;
  /** Sends to the controller; false when not connected (the journals keep what matters). Console commands have none. */
  send: (msg: NonNullable<AgentMessage['msg']>) => boolean;
  /** The generations inventory for the facts (tests may replace it). */
  collectGenerations?: GenerationsCollector;
  /** The updates of a job run at the console, for the terminal. */
  onLocalUpdate?: (u: JobUpdate) => void;
  /**
   * No controller will acknowledge a report: a change that must be confirmed (network) is
   * confirmed at once, as `ibex-agent apply` does (the operator is at the device).
   */
  confirmAtOnce?: boolean;
  /** Under `ibex-agent run`: proves a new connection to the controller works (confirming network changes). */
  freshConnection?: () => Promise<void>;
  /** Where controller artifacts are downloaded from (set on each Welcome); console commands have none. */
  artifacts?: ArtifactEndpoint;
}

/**
 * Everything that acts on one --root and data dir, built the same way for `ibex-agent run`
 * (agent.ts adds the stream to the controller) and for the console commands (`job`,
 * `generations`), so a job run at the console has the same validation, journal, handlers and
 * crash safety as one the controller sends.
 */
export class DeviceServices {
  readonly dataDir: DataDir;
  readonly jobs: JobStore;
  readonly state: StateStore;
  /** One per --root, shared by the generations section, the generations jobs and the trial monitor. */
  readonly generations: GenerationsRoot;
  readonly trial: TrialMonitor;
  readonly facts: FactsReporter;
  readonly engine: Engine;
  readonly desired: DesiredStateManager;
  readonly runner: JobRunner;
  /** Every kind of journaled change, recovered in this order before anything else touches the device. */
  private readonly recoverables: Recoverable[];

  constructor(private readonly o: DeviceServicesOptions) {
    const { cfg, log } = o;
    this.dataDir = new DataDir(cfg.dataDir);
    this.jobs = new JobStore(this.dataDir.jobs);
    this.jobs.load();
    this.state = new StateStore(this.dataDir.state);
    this.state.load();
    const sys = new NodeSystemAdapter();
    this.generations = openGenerationsRoot({ root: cfg.root, dataDir: cfg.dataDir, sys, log, ...(o.artifacts ? { artifacts: o.artifacts } : {}) });
    this.trial = new TrialMonitor(this.generations, { sys, log, onChanged: () => void this.reportFactsNow() });
    this.facts = new FactsReporter({
      root: cfg.root,
      agentVersion: AGENT_VERSION,
      collectGenerations: o.collectGenerations ?? (() => collectGenerationsInventory(this.generations)),
      send: (facts) => o.send({ $case: 'facts', value: { facts } }),
      log,
    });
    this.engine = new Engine({ registry: agentRegistry({ generations: this.generations, artifacts: o.artifacts }), sys, log, root: cfg.root, dataDir: this.dataDir, agentVersion: AGENT_VERSION });
    this.recoverables = [this.engine, generationsRecovery(this.generations)];
    this.desired = new DesiredStateManager({
      engine: this.engine,
      dataDir: this.dataDir,
      state: this.state,
      send: (r) => o.send({ $case: 'stateReport', value: r }),
      log,
      healDrift: cfg.healDrift,
      driftCheckIntervalMs: cfg.driftCheckIntervalSec * 1000,
      confirmAtOnce: o.confirmAtOnce,
      freshConnection: o.freshConnection,
    });
    const handlers: JobHandlers = {
      ...stateJobHandlers(this.desired, () => this.facts.collect()),
      ...generationsJobHandlers(this.generations, this.trial, () => void this.reportFactsNow()),
      ...imageJobHandlers(cfg.root),
    };
    this.runner = new JobRunner({
      store: this.jobs,
      handlers,
      bootId: o.bootId,
      agentVersion: AGENT_VERSION,
      send: (u) => o.send({ $case: 'jobUpdate', value: u }),
      onLocalUpdate: o.onLocalUpdate,
      log,
    });
  }

  /**
   * Before anything else touches the device: finishes or undoes every journaled change a crash
   * interrupted (engine/journaled-change.ts), reports the sections that were reverted, and
   * finishes as "interrupted" the jobs another process left running.
   */
  async recover(): Promise<RecoveredChange[]> {
    const recovered = await recoverAll(this.recoverables);
    const sections = recovered.filter((r) => r.section !== undefined);
    if (sections.length) this.o.log.warn('reverted sections whose apply was interrupted or never confirmed', { sections: sections.map((r) => r.section).join(',') });
    failpoint('recovered-before-report');
    this.desired.reportRecovered(recovered);
    // Journaled now: the reverted records that remembered it across a crash can go.
    this.engine.recoveredReported(recovered);
    this.runner.finishInterrupted();
    return recovered;
  }

  /**
   * Sends a FactsReport now with a freshly collected generations inventory, whether or not the
   * facts changed: what changes the device (a generation switch, a rollback) calls it so the
   * controller shows the new state at once instead of at the next periodic check. Resolves
   * false when the stream is down; the next Hello carries fresh facts anyway.
   */
  reportFactsNow(): Promise<boolean> {
    return this.facts.report(true);
  }
}
