import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ControllerMessage, Hello } from '@ibex/proto';
import type { Facts } from '@ibex/spec';
import { Backoff } from '../common/backoff.js';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { Config } from '../config/config.js';
import { Connection, type ConnectionStatus } from '../connection/connection.js';
import { parseControllerUrl } from '../connection/controller-url.js';
import { collectGenerationsInventory } from '../capabilities/generations/inventory.js';
import { Engine } from '../engine/engine.js';
import { defaultRegistry } from '../engine/registry.js';
import { collectFacts, toProtoFacts } from '../facts/facts-collect.js';
import { FilesystemSizes } from '../facts/filesystem-sizes.js';
import { GenerationsFacts, type GenerationsCollector } from '../facts/generations-facts.js';
import { generationsJobHandlers } from '../capabilities/generations/generations-jobs.js';
import { GenerationsManager } from '../capabilities/generations/generations-manager.js';
import { TrialMonitor } from '../capabilities/generations/trial-monitor.js';
import type { Credential } from '../journal/credential.js';
import { DataDir } from '../journal/data-dir.js';
import { JobStore } from '../journal/job-store.js';
import { StateStore } from '../journal/state-store.js';
import { JobFailure, type JobHandlers } from '../jobs/job-handlers.js';
import { JobRunner } from '../jobs/job-runner.js';
import { boundDiffs, planOutput } from '../jobs/plan-output.js';
import { NodeSystemAdapter } from '../system/node-system-adapter.js';
import { AGENT_VERSION } from '../version.js';
import { DesiredStateManager } from './desired-state-manager.js';
import { writeStatusFile } from './status-file.js';

const PRUNE_EVERY_MS = 3600_000;
const JOB_STOP_GRACE_MS = 10_000;

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

/** What tests may replace; the defaults are the real ones. */
export interface AgentDeps {
  /** The generations inventory for the facts (undefined: no generations layout). */
  collectGenerations?: GenerationsCollector;
  /** Replaces how the generations code reads mountinfo / boot id (tests). */
  generations?: { mountinfoPath?: string; bootIdPath?: string };
}

/**
 * `ibex-agent run`: recovers from the journal, then keeps the stream to the controller and
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
  private readonly startedAtMs = Date.now();
  private readonly controller: string;
  private pruneTimer?: NodeJS.Timeout;
  private factsTimer?: NodeJS.Timeout;
  private lastFacts?: string;
  /** Collected in beforeHello for the next Hello. */
  private helloFacts?: Facts;
  /** One per process: remembers filesystems whose statfs hangs, so they are not asked again meanwhile. */
  private readonly fsSizes: FilesystemSizes;
  private readonly generations: GenerationsFacts;
  private readonly genManager: GenerationsManager;
  private readonly trial: TrialMonitor;
  /** Facts reports one at a time, so an older inventory is never sent after a newer one. */
  private factsChain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly cfg: Config,
    credential: Credential,
    private readonly log: Logger,
    deps: AgentDeps = {},
  ) {
    this.dataDir = new DataDir(cfg.dataDir);
    this.fsSizes = new FilesystemSizes({ log });
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
    this.genManager = new GenerationsManager({ root: cfg.root, sys, log, ...deps.generations });
    this.trial = new TrialMonitor(this.genManager, { sys, log, onChanged: () => void this.reportFactsNow() });
    this.generations = new GenerationsFacts(deps.collectGenerations ?? (deps.generations ? () => this.genManager.inventory() : () => collectGenerationsInventory({ root: cfg.root, sys, log })), log);
    this.engine = new Engine({ registry: defaultRegistry(), sys, log, root: cfg.root, dataDir: this.dataDir, agentVersion: AGENT_VERSION });
    this.desired = new DesiredStateManager({
      engine: this.engine,
      dataDir: this.dataDir,
      state: this.state,
      send: (r) => this.connection.send({ msg: { $case: 'stateReport', value: r } }),
      log,
      healDrift: cfg.healDrift,
      driftCheckIntervalMs: cfg.driftCheckIntervalSec * 1000,
    });
    this.runner = new JobRunner({
      store: this.jobs,
      handlers: this.jobHandlers(),
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
      beforeHello: async () => {
        this.helloFacts = await this.facts().catch((err) => {
          this.log.warn('collecting facts failed', { error: errorMessage(err) });
          return undefined;
        });
      },
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
    const reverted = await this.engine.recoverSections();
    if (reverted.length) this.log.warn('reverted sections whose apply was interrupted or never confirmed', { sections: reverted.map((r) => r.section).join(',') });
    this.desired.reportRecovered(reverted);
    this.runner.finishInterrupted();
    // Before anything else touches the device: finish or undo an interrupted generations
    // operation, count this boot of a trial generation, arm its deadline.
    try {
      await this.trial.start();
    } catch (err) {
      this.log.error('generations recovery failed; generations jobs will retry it', { error: errorMessage(err) });
    }
    this.prune();
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_EVERY_MS);
    this.factsTimer = setInterval(() => void this.reportFacts(false), this.cfg.driftCheckIntervalSec * 1000);
    this.connection.start();
    this.desired.start();
    this.log.info('agent started', { version: AGENT_VERSION, controller: this.controller, root: this.cfg.root, dataDir: this.cfg.dataDir, bootId: this.bootId });
  }

  /** Finishes what is running (journaling results), closes the stream. */
  async stop(): Promise<void> {
    this.log.info('stopping');
    clearInterval(this.pruneTimer);
    clearInterval(this.factsTimer);
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
    return this.reportFacts(true);
  }

  private reportFacts(always: boolean): Promise<boolean> {
    const run = this.factsChain.then(async () => {
      try {
        const facts = await this.facts();
        const stable = stableFacts(facts);
        if (!always && stable === this.lastFacts) return false;
        const sent = this.connection.send({ msg: { $case: 'facts', value: { facts: toProtoFacts(facts) } } });
        if (sent) this.lastFacts = stable;
        return sent;
      } catch (err) {
        this.log.warn('collecting facts failed', { error: errorMessage(err) });
        return false;
      }
    });
    this.factsChain = run;
    return run;
  }

  /** Facts with a freshly collected generations inventory. */
  private async facts(): Promise<Facts> {
    return collectFacts({ root: this.cfg.root, agentVersion: AGENT_VERSION, generations: await this.generations.refresh(), sizes: this.fsSizes });
  }

  private hello(): Hello {
    const facts = this.helloFacts;
    if (!facts) throw new Error('no facts to send in the Hello (collecting them failed)');
    this.lastFacts = stableFacts(facts);
    return {
      agentVersion: AGENT_VERSION,
      facts: toProtoFacts(facts),
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
            this.desired.acked(id);
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

  private jobHandlers(): JobHandlers {
    return {
      'facts.collect': async (_params, ctx) => {
        ctx.progress(10, 'collecting facts');
        const facts = await this.facts();
        ctx.log('info', `collected facts: ${facts.interfaces.length} interfaces, ${facts.filesystems.length} filesystems`);
        return facts;
      },
      'state.apply': async (params, ctx) => {
        ctx.progress(0, params.dryRun ? 'planning' : 'reconciling');
        const r = await this.desired.runNow({ sections: params.sections, dryRun: params.dryRun, signal: ctx.signal });
        for (const s of r.sections) ctx.log(s.error ? 'warn' : 'info', `${s.section}: ${s.state}${s.steps.length ? `, ${s.steps.length} step(s)` : ''}${s.error ? `: ${s.error}` : ''}`);
        const output = {
          revision: r.revision,
          sections: boundDiffs(r.sections).map((s) => ({ section: s.section, state: s.state, ...(s.error ? { error: s.error } : {}), steps: s.steps })),
        };
        const bad = r.sections.filter((s) => s.state === 'failed' || s.state === 'reverted');
        if (bad.length) throw new JobFailure(`section(s) not applied: ${bad.map((s) => `${s.section} (${s.state}: ${s.error})`).join('; ')}`, output);
        return output;
      },
      ...generationsJobHandlers(this.genManager, this.trial, () => void this.reportFactsNow()),
      // A dry run succeeds when it could plan: a section it could not observe is `failed` in the output.
      'state.plan': async (params, ctx) => {
        ctx.progress(0, params.spec ? 'planning a proposed desired state' : 'planning the current desired state');
        const r = await this.desired.planNow({ spec: params.spec as Record<string, unknown> | undefined, sections: params.sections, signal: ctx.signal });
        for (const s of r.sections) ctx.log(s.error ? 'warn' : 'info', `${s.section}: ${s.state}${s.steps.length ? `, ${s.steps.length} step(s) would run` : ''}${s.error ? `: ${s.error}` : ''}`);
        return planOutput(r);
      },
    };
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
