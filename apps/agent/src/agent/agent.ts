import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ControllerMessage, Hello } from '@ibex/proto';
import { generationsRecovery } from '../capabilities/generations/generations-journal.js';
import { generationsJobHandlers } from '../capabilities/generations/generations-jobs.js';
import { GenerationsRoot } from '../capabilities/generations/generations-root.js';
import { collectGenerationsInventory } from '../capabilities/generations/inventory.js';
import { TrialMonitor } from '../capabilities/generations/trial-monitor.js';
import { Backoff } from '../common/backoff.js';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { Config } from '../config/config.js';
import { Connection, type ConnectionStatus } from '../connection/connection.js';
import { parseControllerUrl } from '../connection/controller-url.js';
import { Engine } from '../engine/engine.js';
import { type Recoverable, recoverAll } from '../engine/journaled-change.js';
import { FactsReporter } from '../facts/facts-reporter.js';
import type { GenerationsCollector } from '../facts/generations-facts.js';
import type { Credential } from '../journal/credential.js';
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
import { writeStatusFile } from './status-file.js';

const PRUNE_EVERY_MS = 3600_000;
const JOB_STOP_GRACE_MS = 10_000;

/** What tests may replace; the defaults are the real ones. */
export interface AgentDeps {
  /** The generations inventory for the facts (undefined: no generations layout). */
  collectGenerations?: GenerationsCollector;
}

/**
 * `ibex-agent run`: wires the parts together. At start it recovers every journaled change a
 * crash interrupted (engine/journaled-change.ts), then keeps the stream to the controller and
 * serves it until `stop()`.
 */
export class Agent {
  readonly bootId = randomUUID();
  private readonly dataDir: DataDir;
  private readonly jobs: JobStore;
  private readonly state: StateStore;
  private readonly engine: Engine;
  private readonly runner: JobRunner;
  private readonly desired: DesiredStateManager;
  private readonly connection: Connection;
  private readonly facts: FactsReporter;
  private readonly trial: TrialMonitor;
  /** Every kind of journaled change this agent makes, recovered in this order at start. */
  private readonly recoverables: Recoverable[];
  private readonly startedAtMs = Date.now();
  private readonly controller: string;
  private pruneTimer?: NodeJS.Timeout;

  constructor(
    private readonly cfg: Config,
    credential: Credential,
    private readonly log: Logger,
    deps: AgentDeps = {},
  ) {
    this.dataDir = new DataDir(cfg.dataDir);
    this.controller = cfg.controller ?? credential.controller;
    const url = parseControllerUrl(this.controller);
    const caFile = cfg.caFile ?? credential.caFile;
    let caPem: Buffer | undefined;
    if (caFile) {
      try {
        caPem = readFileSync(caFile);
      } catch (err) {
        throw new Error(`CA file ${caFile} cannot be read (${errorMessage(err)}); fix --ca/caFile`);
      }
    }
    this.jobs = new JobStore(this.dataDir.jobs);
    this.jobs.load();
    this.state = new StateStore(this.dataDir.state);
    this.state.load();
    const sys = new NodeSystemAdapter();
    // One per --root, shared by the generations section, the generations jobs and the trial monitor.
    const generations = new GenerationsRoot({ root: cfg.root, sys, log });
    this.trial = new TrialMonitor(generations, { sys, log, onChanged: () => void this.reportFactsNow() });
    this.facts = new FactsReporter({
      root: cfg.root,
      agentVersion: AGENT_VERSION,
      collectGenerations: deps.collectGenerations ?? (() => collectGenerationsInventory(generations)),
      send: (facts) => this.connection.send({ msg: { $case: 'facts', value: { facts } } }),
      log,
    });
    this.engine = new Engine({ registry: agentRegistry({ generations }), sys, log, root: cfg.root, dataDir: this.dataDir, agentVersion: AGENT_VERSION });
    this.recoverables = [this.engine, generationsRecovery(generations)];
    this.desired = new DesiredStateManager({
      engine: this.engine,
      dataDir: this.dataDir,
      state: this.state,
      send: (r) => this.connection.send({ msg: { $case: 'stateReport', value: r } }),
      log,
      healDrift: cfg.healDrift,
      driftCheckIntervalMs: cfg.driftCheckIntervalSec * 1000,
    });
    const handlers: JobHandlers = {
      ...stateJobHandlers(this.desired, () => this.facts.collect()),
      ...generationsJobHandlers(generations, this.trial, () => void this.reportFactsNow()),
    };
    this.runner = new JobRunner({
      store: this.jobs,
      handlers,
      bootId: this.bootId,
      agentVersion: AGENT_VERSION,
      send: (u) => this.connection.send({ msg: { $case: 'jobUpdate', value: u } }),
      log,
    });
    this.connection = new Connection({
      url,
      caPem,
      credential: credential.credential,
      log,
      backoff: new Backoff({ baseMs: 1000, capMs: 60_000 }),
      // Hello is built synchronously: its facts are collected (asynchronously) just before.
      beforeHello: () => this.facts.prepareHello(),
      hello: () => this.hello(),
      onWelcome: () => {
        this.resendUnacked();
        // Reaching the controller is the first half of a trial generation's health check.
        void this.trial.controllerReached();
      },
      onMessage: (m) => this.onMessage(m),
      onStatus: (s) => this.writeStatus(s, true),
    });
  }

  async start(): Promise<void> {
    this.writeStatus({ connected: false, credentialRefused: false }, true);
    // Before anything else touches the device: finish or undo what a crash interrupted.
    const recovered = await recoverAll(this.recoverables);
    const sections = recovered.filter((r) => r.section !== undefined);
    if (sections.length) this.log.warn('reverted sections whose apply was interrupted or never confirmed', { sections: sections.map((r) => r.section).join(',') });
    this.desired.reportRecovered(recovered);
    this.runner.finishInterrupted();
    // Count this boot of a trial generation, arm its deadline.
    try {
      await this.trial.start();
    } catch (err) {
      this.log.error('generations trial bookkeeping failed at start; generations jobs will retry it', { error: errorMessage(err) });
    }
    this.prune();
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_EVERY_MS);
    this.facts.start(this.cfg.driftCheckIntervalSec * 1000);
    this.connection.start();
    this.desired.start();
    this.log.info('agent started', { version: AGENT_VERSION, controller: this.controller, root: this.cfg.root, dataDir: this.cfg.dataDir, bootId: this.bootId });
  }

  /** Finishes what is running (journaling results), closes the stream. */
  async stop(): Promise<void> {
    this.log.info('stopping');
    clearInterval(this.pruneTimer);
    this.facts.stop();
    // Kills a running health check at once (no verdict after this); waited for after the jobs,
    // since a queued switch back may wait for the generations lock a running job holds.
    const trialStopped = this.trial.stop();
    await this.runner.stop(JOB_STOP_GRACE_MS);
    await trialStopped;
    await this.desired.stop();
    await this.connection.stop();
    this.writeStatus({ connected: false, credentialRefused: false }, false);
    this.log.info('stopped');
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

  private hello(): Hello {
    return {
      agentVersion: AGENT_VERSION,
      facts: this.facts.helloFacts(),
      lastAppliedRevision: this.state.appliedRevision,
      lastReceivedRevision: this.desired.receivedRevision,
      unfinishedJobs: this.jobs.unfinished(),
      bootId: this.bootId,
    };
  }

  /** Everything not acknowledged, in order: job updates, then state reports. */
  private resendUnacked(): void {
    const updates = this.jobs.unacked();
    const reports = this.state.unacked();
    if (updates.length || reports.length) this.log.info('re-sending unacknowledged updates', { jobUpdates: updates.length, stateReports: reports.length });
    for (const u of updates) this.connection.send({ msg: { $case: 'jobUpdate', value: u } });
    for (const r of reports) this.connection.send({ msg: { $case: 'stateReport', value: r } });
  }

  private onMessage(m: ControllerMessage): void {
    try {
      switch (m.msg?.$case) {
        case 'assign':
          return this.runner.assign(m.msg.value);
        case 'cancel':
          return this.runner.cancel(m.msg.value);
        case 'desired':
          return this.desired.receive(m.msg.value);
        case 'ack':
          for (const id of m.msg.value.ids) {
            // The Ack of a state report sent after a change confirms it (engine/confirmations.ts).
            this.engine.confirmations.acked(id);
            if (!this.jobs.ack(id) && !this.state.ack(id)) this.log.debug('ack for an unknown id', { id });
          }
          void this.trial.controllerReached();
          return;
        case 'welcome':
        case undefined:
          return;
      }
    } catch (err) {
      // A journal write failing (disk full, read-only) must not kill the stream handler.
      this.log.error('handling a controller message failed', { kind: m.msg?.$case, error: errorMessage(err) });
    }
  }

  private prune(): void {
    try {
      const pruned = this.jobs.prune();
      if (pruned.length) this.log.info('pruned old job journals', { count: pruned.length });
    } catch (err) {
      this.log.warn('pruning job journals failed', { error: errorMessage(err) });
    }
  }

  private writeStatus(s: ConnectionStatus, running: boolean): void {
    try {
      writeStatusFile(this.dataDir.status, { ...s, pid: process.pid, bootId: this.bootId, startedAtMs: this.startedAtMs, controller: this.controller, running, updatedAtMs: Date.now() });
    } catch (err) {
      this.log.warn('writing the status file failed', { error: errorMessage(err) });
    }
  }
}
