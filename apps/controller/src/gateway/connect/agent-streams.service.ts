import { Inject, Injectable, Logger } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import type { AgentMessage } from '@ibex/proto';
import { Clock } from '../../common/clock.js';
import { Limiter } from '../../common/limiter.js';
import { Unauthenticated, ValidationFailed } from '../../common/errors.js';
import { CONFIG, type Config } from '../../config/config.js';
import type { Prisma } from '../../generated/prisma/client.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { factsReportSchema, heartbeatSchema, helloSchema, jobUpdateSchema, localChangeSchema, parseAgentInput, stateReportSchema, type HelloInput } from '../agent-messages.schema.js';
import { UndecodableFrame } from '../agent-service-definition.js';
import { grpcFailure, type GrpcFailure, retryTransient } from '../grpc-status.js';
import { JobUpdates } from '../jobs/job-updates.service.js';
import { LocalChanges } from '../local/local-changes.service.js';
import { PresenceService } from '../presence/presence.service.js';
import { StateReports } from '../state/state-reports.service.js';
import { AgentSession, endCall, type AgentCall } from './agent-session.js';
import { DeliveryPass } from './delivery-pass.service.js';
import { CREDENTIAL_REFUSED, DeviceAuth, type AuthenticatedDevice } from './device-auth.service.js';
import { SessionRegistry } from './session-registry.service.js';

export const SHUTTING_DOWN: GrpcFailure = { code: status.UNAVAILABLE, details: 'controller shutting down' };
const STREAM_ENDED: GrpcFailure = { code: status.CANCELLED, details: 'stream ended' };
/** A pass that failed (Postgres or Redis down) is tried again after this long. */
const PASS_RETRY_MS = 5000;
/** Messages buffered per stream before it stops reading (HTTP/2 flow control then holds the agent). */
const MAX_BACKLOG = 64;
/**
 * Connects authenticated at once, and Hellos handled (session registered, connection recorded,
 * Welcome) at once, per replica; the rest wait in order. Each takes several database and Redis
 * round trips: 10,000 agents reconnecting together all interleaved theirs, so every one of them
 * finished late, after the agent's 30 s wait for a Welcome, and reconnected again: 0 of 10,000
 * welcomed 60 s after a restart (bench:agents --storm). In order, the first ones are welcomed
 * at once. Waiting for a Hello holds no slot; a stream the agent gave up while waiting is skipped.
 */
const ADMIT_AT_ONCE = 16;
/** The longest reconnect window a Welcome asks for, whatever the fleet's size. */
const MAX_RECONNECT_WINDOW_MS = 300_000;
/** How often the devices behind the reconnect window are counted again. */
const FLEET_COUNT_EVERY_MS = 60_000;

/**
 * The Connect stream (protocol.md "Connect"): authenticate from metadata, wait for Hello,
 * register the session (taking over an older one anywhere), record the connection, Welcome,
 * deliver; then handle the agent's messages one at a time, in order, and clean up at the end.
 */
@Injectable()
export class AgentStreams {
  private readonly log = new Logger('AgentStreams');
  private accepting = true;
  private readonly cleanups = new Set<Promise<void>>();
  /** Hellos being handled: shutdown waits for them, so no session registers after it looked. */
  private readonly opening = new Set<Promise<unknown>>();
  private readonly authenticating = new Limiter(ADMIT_AT_ONCE);
  private readonly hellos = new Limiter(ADMIT_AT_ONCE);
  private idleTimer?: NodeJS.Timeout;
  /** Devices not revoked, counted at most once a minute, off the Hello's path (reconnectWindowMs). */
  private fleet = { count: 0, countedAt: 0, counting: false };

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
    private readonly auth: DeviceAuth,
    private readonly registry: SessionRegistry,
    private readonly presence: PresenceService,
    private readonly pass: DeliveryPass,
    private readonly jobUpdates: JobUpdates,
    private readonly stateReports: StateReports,
    private readonly localChanges: LocalChanges,
  ) {}

  /** The Connect handler: authentication first, then the Hello must come within the timeout. */
  handle(call: AgentCall): void {
    if (!this.accepting) return endCall(call, SHUTTING_DOWN);
    this.authenticating.run(async () => (call.cancelled || call.writableEnded ? undefined : this.auth.authenticate(call))).then(
      (device) => {
        if (!device || call.cancelled || call.writableEnded) return;
        const helloTimer = setTimeout(
          () => endCall(call, { code: status.INVALID_ARGUMENT, details: `no Hello within ${this.config.helloTimeoutMs} ms: the first message on a stream must be a Hello` }),
          this.config.helloTimeoutMs,
        );
        this.readMessages(call, device, helloTimer);
      },
      (err: unknown) => this.fail(call, err, 'authenticating'),
    );
  }

  /** Starts ending idle streams (no message for IBEX_OFFLINE_AFTER_MS: the agent is gone). */
  start(): void {
    this.countFleet();
    this.idleTimer ??= setInterval(() => this.closeIdle(), Math.min(this.config.heartbeatIntervalMs, this.config.offlineAfterMs));
  }

  /**
   * Shutdown: refuse new streams, end every open one with UNAVAILABLE (agents reconnect,
   * maybe to another replica) and clear their connectedAt in one statement.
   */
  async stop(): Promise<void> {
    this.accepting = false;
    clearInterval(this.idleTimer);
    await Promise.allSettled([...this.opening]);
    const sessions = this.registry.all();
    for (const s of sessions) s.close(SHUTTING_DOWN);
    await Promise.allSettled([...this.cleanups]);
    for (let i = 0; i < sessions.length; i += 1000) {
      const ids = sessions.slice(i, i + 1000).map((s) => s.deviceId);
      await this.prisma.device
        .updateMany({ where: { id: { in: ids }, connectedTo: this.config.replicaId }, data: { connectedAt: null, connectedTo: null } })
        .catch((err: Error) => this.log.error(`could not mark ${ids.length} devices disconnected at shutdown: ${err.message}`));
    }
  }

  private readMessages(call: AgentCall, device: AuthenticatedDevice, helloTimer: NodeJS.Timeout): void {
    let session: AgentSession | undefined;
    let chain: Promise<void> = Promise.resolve();
    let backlog = 0;
    let cleanedUp = false;

    const process = async (m: AgentMessage): Promise<void> => {
      if (call.writableEnded || call.cancelled) return;
      if (m instanceof UndecodableFrame) throw m.toError();
      if (!session) {
        clearTimeout(helloTimer);
        if (m.msg?.$case !== 'hello') throw firstMessageNotHello(m);
        const hello = parseAgentInput(helloSchema, m.msg.value, 'Hello');
        if (!this.accepting) return endCall(call, SHUTTING_DOWN);
        // Given up by the agent while waiting for its turn: not registered (it would take over the
        // session of the agent's next attempt).
        const opening = this.hellos.run(async () => (call.cancelled || call.writableEnded ? undefined : this.open(call, device, hello)));
        this.opening.add(opening);
        try {
          session = await opening;
        } finally {
          this.opening.delete(opening);
        }
        return;
      }
      // Contention (a pool or a transaction that timed out under load) is retried here rather
      // than ending the stream: the agent would reconnect and re-send, at a higher cost.
      const s = session;
      await retryTransient(() => this.onMessage(s, m), {
        onRetry: (err, attempt) => this.log.warn(`${s.device.name}: ${m.msg?.$case ?? 'message'} hit database contention (try ${attempt}), retrying: ${(err as Error).message.split('\n')[0]}`),
      });
    };

    const cleanup = (): void => {
      if (cleanedUp) return;
      cleanedUp = true;
      clearTimeout(helloTimer);
      // After the message in flight: a Hello being handled may still register a session.
      const done = chain.then(() => (session ? this.closeSession(session) : undefined));
      this.cleanups.add(done);
      void done.finally(() => this.cleanups.delete(done));
    };

    call.on('data', (m: AgentMessage) => {
      // Heard now, when it arrives, not once it has been handled: messages wait behind the one
      // in flight (a state report queued for the database during a fan-out to thousands), and
      // counting from their handling closed busy agents' streams as idle ("no message from the
      // agent"), 2,414 of 5,000 in one fan-out (bench:agents --fanout).
      if (session) {
        session.lastHeardAt = Date.now();
        this.presence.touch(session.deviceId);
      }
      if (++backlog >= MAX_BACKLOG) call.pause();
      chain = chain
        .then(() => process(m))
        .catch((err: unknown) => this.fail(call, err, `handling a message from ${device.name}`))
        .finally(() => {
          if (--backlog < MAX_BACKLOG && call.isPaused()) call.resume();
        });
    });
    // The agent half-closed: end our side too.
    call.on('end', () => void chain.then(() => !call.writableEnded && call.end()));
    call.on('cancelled', cleanup);
    call.on('finish', cleanup);
    call.on('close', cleanup);
    call.on('error', () => cleanup());
  }

  /** After Hello: register, record the connection, Welcome, first delivery pass. */
  private async open(call: AgentCall, device: AuthenticatedDevice, hello: HelloInput): Promise<AgentSession> {
    const now = this.clock.now();
    const session = new AgentSession(device, now, call, hello.lastReceivedRevision, (s) => this.runPass(s));
    try {
      await this.registry.register(session);
      // Subscribed now: a revocation committed from here on reaches this session through its
      // channel, and one committed before is seen by this read.
      if (!(await this.auth.stillValid(device))) throw new Unauthenticated(`${CREDENTIAL_REFUSED} (revoked while connecting)`);
      // updateMany: nothing read back (the row, facts and all, is not needed here).
      const { count } = await this.prisma.device.updateMany({
        where: { id: device.id },
        data: {
          connectedAt: now,
          connectedTo: this.config.replicaId,
          bootId: hello.bootId || null,
          ...(hello.agentVersion ? { agentVersion: hello.agentVersion } : {}),
          ...(hello.facts ? { facts: hello.facts as Prisma.InputJsonValue } : {}),
          receivedRevision: hello.lastReceivedRevision,
          appliedRevision: hello.lastAppliedRevision,
          lastSeenAt: now,
        },
      });
      if (count === 0) throw new Unauthenticated(`${CREDENTIAL_REFUSED} (the device was deleted while connecting)`);
    } catch (err) {
      // Not registered half-way: the stream ends and nothing routes to it.
      await this.registry.unregister(session).catch(() => {});
      throw err;
    }
    session.send({
      $case: 'welcome',
      value: {
        deviceId: device.id,
        deviceName: device.name,
        heartbeatIntervalMs: this.config.heartbeatIntervalMs,
        serverTimeMs: now.getTime(),
        controllerVersion: this.config.version,
        artifactsUrl: this.config.artifacts.url,
        reconnectWindowMs: this.reconnectWindowMs(),
      },
    });
    this.log.debug(`device ${device.name} (${device.id}) connected, session ${session.id}`);
    session.requestPass();
    return session;
  }

  private async onMessage(session: AgentSession, m: AgentMessage): Promise<void> {
    const msg = m.msg;
    switch (msg?.$case) {
      case undefined:
        throw new ValidationFailed('invalid AgentMessage: msg is empty; send one of hello, heartbeat, state_report, job_update, facts or local_change', [
          { path: 'msg', message: 'is required' },
        ]);
      case 'hello':
        throw new ValidationFailed('invalid AgentMessage: a second Hello; a stream carries one Hello, as its first message', [
          { path: 'hello', message: 'was already received on this stream' },
        ]);
      case 'heartbeat':
        parseAgentInput(heartbeatSchema, msg.value, 'Heartbeat');
        break;
      case 'facts': {
        const { facts } = parseAgentInput(factsReportSchema, msg.value, 'FactsReport');
        await this.prisma.device.update({ where: { id: session.deviceId }, data: { facts: facts as Prisma.InputJsonValue } });
        break;
      }
      case 'stateReport': {
        const report = parseAgentInput(stateReportSchema, msg.value, 'StateReport');
        await this.stateReports.store(session.deviceId, report);
        session.ack(report.reportId);
        break;
      }
      case 'jobUpdate': {
        const update = parseAgentInput(jobUpdateSchema, msg.value, 'JobUpdate');
        await this.jobUpdates.apply(session.deviceId, update);
        session.ack(update.updateId);
        break;
      }
      case 'localChange': {
        const change = parseAgentInput(localChangeSchema, msg.value, 'LocalChange');
        await this.localChanges.record(session.device, change);
        session.ack(change.changeId);
        break;
      }
    }
  }

  private async runPass(session: AgentSession): Promise<void> {
    try {
      await this.pass.run(session);
    } catch (err) {
      this.log.error(`delivery to ${session.device.name} (${session.deviceId}) failed, retrying in ${PASS_RETRY_MS} ms: ${(err as Error).message}`);
      setTimeout(() => session.requestPass(), PASS_RETRY_MS).unref();
    }
  }

  /** The stream ended: forget the session and clear connectedAt, unless a newer session set it. */
  private async closeSession(session: AgentSession): Promise<void> {
    session.close(STREAM_ENDED); // normally already closed; stops a pass still queued
    try {
      if (!(await this.registry.unregister(session)) || !this.accepting) return;
      await this.prisma.device.updateMany({
        where: { id: session.deviceId, connectedTo: this.config.replicaId, connectedAt: session.connectedAt },
        data: { connectedAt: null, connectedTo: null },
      });
    } catch (err) {
      this.log.error(`could not record that ${session.device.name} (${session.deviceId}) disconnected: ${(err as Error).message}`);
    }
  }

  /**
   * How widely this agent should spread its first reconnect once the stream breaks: the fleet
   * over the rate a replica admits agents (IBEX_RECONNECT_RATE). When the controller dies, all
   * its agents lose their stream at once; coming back within one second they all paid their TLS
   * handshakes first and the controller welcomed none for 20 s (10,000 agents, bench:agents
   * --storm); spread over the window, they arrive at the pace they can be admitted.
   */
  private reconnectWindowMs(): number {
    if (Date.now() - this.fleet.countedAt >= FLEET_COUNT_EVERY_MS) this.countFleet();
    const agents = Math.max(this.fleet.count, this.registry.size);
    return Math.min(MAX_RECONNECT_WINDOW_MS, Math.ceil((agents / this.config.reconnectRate) * 1000));
  }

  private countFleet(): void {
    if (this.fleet.counting) return;
    this.fleet.counting = true;
    this.prisma.device
      .count({ where: { revokedAt: null } })
      .then((n) => (this.fleet = { count: n, countedAt: Date.now(), counting: false }))
      .catch((err: Error) => {
        this.fleet = { ...this.fleet, countedAt: Date.now(), counting: false };
        this.log.warn(`could not count the devices for the reconnect window: ${err.message}`);
      });
  }

  private closeIdle(): void {
    const limit = Date.now() - this.config.offlineAfterMs;
    for (const s of this.registry.all()) {
      if (s.lastHeardAt < limit) s.close({ code: status.UNAVAILABLE, details: `no message from the agent for ${this.config.offlineAfterMs} ms; reconnect` });
    }
  }

  private fail(call: AgentCall, err: unknown, doing: string): void {
    const failure = grpcFailure(err);
    if (failure.code === status.INTERNAL || failure.code === status.UNAVAILABLE) {
      this.log.error(`Connect: ${doing}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    endCall(call, failure);
  }
}

function firstMessageNotHello(m: AgentMessage): ValidationFailed {
  const got = m.msg?.$case ?? 'an empty message';
  return new ValidationFailed(`invalid AgentMessage: the first message on a stream must be a Hello, got ${got}`, [{ path: 'hello', message: 'is required first' }]);
}
