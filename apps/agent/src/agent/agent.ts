import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ControllerMessage, Hello } from '@ibex/proto';
import { ArtifactEndpoint } from '../artifacts/artifact-endpoint.js';
import { Backoff } from '../common/backoff.js';
import { errorMessage } from '../common/errors.js';
import { failpoint } from '../common/failpoints.js';
import type { Logger } from '../common/log.js';
import type { Config } from '../config/config.js';
import { Connection, type ConnectionStatus } from '../connection/connection.js';
import { freshConnectionProbe } from '../connection/fresh-connection-probe.js';
import { parseControllerUrl } from '../connection/controller-url.js';
import type { GenerationsCollector } from '../facts/generations-facts.js';
import { CertificateRenewer } from '../identity/certificate-renewer.js';
import type { Credential } from '../journal/credential.js';
import { DataDir } from '../journal/data-dir.js';
import { AGENT_VERSION } from '../version.js';
import { DeviceServices } from './device-services.js';
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
  private readonly device: DeviceServices;
  private readonly connection: Connection;
  private readonly renewer: CertificateRenewer;
  private readonly startedAtMs = Date.now();
  private readonly controller: string;
  private pruneTimer?: NodeJS.Timeout;

  constructor(
    private readonly cfg: Config,
    credential: Credential,
    private readonly log: Logger,
    deps: AgentDeps = {},
  ) {
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
    this.renewer = new CertificateRenewer({ path: new DataDir(cfg.dataDir).certificate, url, caPem, credential: credential.credential, deviceName: credential.deviceName, log });
    const artifacts = new ArtifactEndpoint(credential.credential, url.target.slice(0, url.target.lastIndexOf(':')));
    this.device = new DeviceServices({
      cfg,
      log,
      bootId: this.bootId,
      send: (msg) => this.connection.send({ msg }),
      collectGenerations: deps.collectGenerations,
      freshConnection: freshConnectionProbe(url, caPem, undefined, () => this.renewer.certificate),
      artifacts,
    });
    this.connection = new Connection({
      url,
      caPem,
      credential: credential.credential,
      clientCertificate: () => this.renewer.certificate,
      log,
      backoff: new Backoff({ baseMs: 1000, capMs: 60_000 }),
      // Hello is built synchronously: its facts are collected (asynchronously) just before.
      // A certificate due for renewal is renewed first, so this attempt already uses the new one.
      beforeHello: async () => {
        await this.renewer.renewIfDue();
        await this.device.facts.prepareHello();
      },
      hello: () => this.hello(),
      onWelcome: (w) => {
        artifacts.welcome(w.artifactsUrl);
        this.resendUnacked();
        // Reaching the controller is the first half of a trial generation's health check.
        void this.device.trial.controllerReached();
      },
      onMessage: (m) => this.onMessage(m),
      onStatus: (s) => this.writeStatus(s, true),
    });
  }

  async start(): Promise<void> {
    this.writeStatus({ connected: false, credentialRefused: false }, true);
    // Before anything else touches the device: finish or undo what a crash interrupted.
    await this.device.recover();
    // Count this boot of a trial generation, arm its deadline.
    try {
      await this.device.trial.start();
    } catch (err) {
      this.log.error('generations trial bookkeeping failed at start; generations jobs will retry it', { error: errorMessage(err) });
    }
    this.prune();
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_EVERY_MS);
    this.device.facts.start(this.cfg.driftCheckIntervalSec * 1000);
    this.renewer.start();
    this.connection.start();
    this.device.desired.start();
    this.log.info('agent started', { version: AGENT_VERSION, controller: this.controller, root: this.cfg.root, dataDir: this.cfg.dataDir, bootId: this.bootId });
  }

  /** Finishes what is running (journaling results), closes the stream. */
  async stop(): Promise<void> {
    this.log.info('stopping');
    clearInterval(this.pruneTimer);
    this.device.facts.stop();
    // Kills a running health check at once (no verdict after this); waited for after the jobs,
    // since a queued switch back may wait for the generations lock a running job holds.
    const trialStopped = this.device.trial.stop();
    await this.device.runner.stop(JOB_STOP_GRACE_MS);
    await trialStopped;
    await this.device.desired.stop();
    this.renewer.stop();
    await this.connection.stop();
    this.writeStatus({ connected: false, credentialRefused: false }, false);
    this.log.info('stopped');
  }

  /** Fresh facts to the controller now (DeviceServices.reportFactsNow). */
  reportFactsNow(): Promise<boolean> {
    return this.device.reportFactsNow();
  }

  private hello(): Hello {
    return {
      agentVersion: AGENT_VERSION,
      facts: this.device.facts.helloFacts(),
      lastAppliedRevision: this.device.state.appliedRevision,
      lastReceivedRevision: this.device.desired.receivedRevision,
      unfinishedJobs: this.device.jobs.unfinished(),
      bootId: this.bootId,
    };
  }

  /** Everything not acknowledged, in order: job updates, state reports, then jobs run at the console. */
  private resendUnacked(): void {
    const updates = this.device.jobs.unacked();
    const reports = this.device.state.unacked();
    const local = this.device.jobs.localChanges();
    if (updates.length || reports.length || local.length) this.log.info('re-sending unacknowledged updates', { jobUpdates: updates.length, stateReports: reports.length, localChanges: local.length });
    for (const u of updates) this.connection.send({ msg: { $case: 'jobUpdate', value: u } });
    for (const r of reports) this.connection.send({ msg: { $case: 'stateReport', value: r } });
    for (const c of local) this.connection.send({ msg: { $case: 'localChange', value: c } });
  }

  private onMessage(m: ControllerMessage): void {
    try {
      switch (m.msg?.$case) {
        case 'assign':
          return this.device.runner.assign(m.msg.value);
        case 'cancel':
          return this.device.runner.cancel(m.msg.value);
        case 'desired':
          return this.device.desired.receive(m.msg.value);
        case 'ack':
          for (const id of m.msg.value.ids) {
            // The Ack of a state report sent after a change confirms it (engine/confirmations.ts).
            this.device.engine.confirmations.acked(id);
            if (this.device.jobs.ack(id) || this.device.state.ack(id)) continue;
            if (this.device.jobs.isLocal(id)) {
              failpoint('local-change-reported');
              if (this.device.jobs.ackLocal(id)) this.log.info('a job run at the console was reported to the controller', { jobId: id });
              continue;
            }
            this.log.debug('ack for an unknown id', { id });
          }
          void this.device.trial.controllerReached();
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
      const pruned = this.device.jobs.prune();
      if (pruned.length) this.log.info('pruned old job journals', { count: pruned.length });
    } catch (err) {
      this.log.warn('pruning job journals failed', { error: errorMessage(err) });
    }
  }

  private writeStatus(s: ConnectionStatus, running: boolean): void {
    try {
      writeStatusFile(this.device.dataDir.status, { ...s, pid: process.pid, bootId: this.bootId, startedAtMs: this.startedAtMs, controller: this.controller, running, updatedAtMs: Date.now() });
    } catch (err) {
      this.log.warn('writing the status file failed', { error: errorMessage(err) });
    }
  }
}
