import { Metadata, Server, ServerCredentials, type ServerDuplexStream, type StatusObject, status as grpcStatus } from '@grpc/grpc-js';
import {
  type AgentMessage,
  AgentServiceService,
  type ControllerMessage,
  type EnrollRequest,
  type EnrollResponse,
  type Hello,
  type JobUpdate,
  type LocalChange,
  type StateReport,
} from '@ibex/proto';
import { waitFor } from './wait.js';

/** One Connect stream as the controller sees it. */
export interface ScriptedSession {
  index: number;
  authorization: string;
  hello?: Hello;
  call: ServerDuplexStream<AgentMessage, ControllerMessage>;
  ended: boolean;
}

export interface Received {
  session: number;
  at: number;
  msg: NonNullable<AgentMessage['msg']>;
}

export interface ScriptedControllerOptions {
  port?: number;
  /** Address to listen on (default 127.0.0.1), e.g. the host end of a test veth. */
  host?: string;
  credentials?: ServerCredentials;
  /** The credential Connect accepts (Bearer value). */
  credential?: string;
  heartbeatIntervalMs?: number;
  /** The Welcome's reconnect_window_ms (0: none). */
  reconnectWindowMs?: number;
}

/**
 * A real AgentService peer for tests, driven by the test: it answers Enroll, welcomes a Hello,
 * acknowledges updates (unless told not to) and records everything the agent sends. Tests send
 * assignments, cancellations and desired states through `send`.
 */
export class ScriptedController {
  readonly received: Received[] = [];
  readonly sessions: ScriptedSession[] = [];
  readonly enrollRequests: EnrollRequest[] = [];
  autoAck = true;
  /** When set, Connect ends with this status instead of welcoming. */
  refuse?: { code: grpcStatus; details: string };
  /** The reconnect window the Welcome carries (overrides the option). */
  reconnectWindowMs?: number;
  enrollResult: EnrollResponse | { code: grpcStatus; details: string } = {
    deviceId: 'dev-1',
    deviceName: 'device-one',
    credential: 'ibxd_dev-1_secret',
    labels: { site: 'test' },
    certificatePem: '',
  };

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly opts: ScriptedControllerOptions,
  ) {}

  static async start(opts: ScriptedControllerOptions = {}): Promise<ScriptedController> {
    const server = new Server();
    let self: ScriptedController | undefined;
    server.addService(AgentServiceService, {
      enroll: (call: { request: EnrollRequest }, cb: (err: Partial<StatusObject> | null, res?: EnrollResponse) => void) => self!.onEnroll(call.request, cb),
      connect: (call: ServerDuplexStream<AgentMessage, ControllerMessage>) => self!.onConnect(call),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${opts.host ?? '127.0.0.1'}:${opts.port ?? 0}`, opts.credentials ?? ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    self = new ScriptedController(server, port, opts);
    return self;
  }

  get url(): string {
    return `grpc://${this.opts.host ?? '127.0.0.1'}:${this.port}`;
  }

  /**
   * Stops accepting connections while the open streams go on: what a device sees after a change
   * that breaks new connections only (a lost route or DNS server, a firewall passing only
   * established traffic).
   */
  stopListening(): void {
    this.server.unbind(`${this.opts.host ?? '127.0.0.1'}:${this.port}`);
  }

  /** Closes every stream at once (like a crashed controller). */
  async stop(): Promise<void> {
    for (const s of this.sessions) s.ended = true;
    this.server.forceShutdown();
  }

  /** The newest session still open. */
  current(): ScriptedSession | undefined {
    return [...this.sessions].reverse().find((s) => !s.ended && s.hello);
  }

  send(msg: ControllerMessage['msg'], session = this.current()): void {
    if (!session) throw new Error('no open session to send to');
    session.call.write({ msg });
  }

  ack(...ids: string[]): void {
    this.send({ $case: 'ack', value: { ids } });
  }

  /** Ends the current stream from the controller side with a status. */
  endCurrent(code: grpcStatus = grpcStatus.UNAVAILABLE, details = 'closed by the test'): void {
    const s = this.current();
    if (!s) throw new Error('no open session');
    s.ended = true;
    s.call.emit('error', { code, details, metadata: new Metadata() });
  }

  jobUpdates(jobId?: string): (JobUpdate & { session: number })[] {
    return this.received.flatMap((r) => (r.msg.$case === 'jobUpdate' && (!jobId || r.msg.value.jobId === jobId) ? [{ ...r.msg.value, session: r.session }] : []));
  }

  localChanges(): (LocalChange & { session: number })[] {
    return this.received.flatMap((r) => (r.msg.$case === 'localChange' ? [{ ...r.msg.value, session: r.session }] : []));
  }

  stateReports(): (StateReport & { session: number })[] {
    return this.received.flatMap((r) => (r.msg.$case === 'stateReport' ? [{ ...r.msg.value, session: r.session }] : []));
  }

  ofKind<K extends NonNullable<AgentMessage['msg']>['$case']>(kind: K): Received[] {
    return this.received.filter((r) => r.msg.$case === kind);
  }

  waitFor<T>(what: string, probe: () => T | undefined | null | false, timeoutMs?: number): Promise<T> {
    return waitFor(what, probe, timeoutMs);
  }

  /** Waits for a session (after `after` sessions) whose Hello arrived. */
  waitForSession(after = 0, timeoutMs = 15_000): Promise<ScriptedSession> {
    return waitFor(`a Hello on session #${after + 1}`, () => this.sessions.find((s) => s.index > after && s.hello && !s.ended), timeoutMs);
  }

  private onEnroll(req: EnrollRequest, cb: (err: Partial<StatusObject> | null, res?: EnrollResponse) => void): void {
    this.enrollRequests.push(req);
    const r = this.enrollResult;
    if ('code' in r) cb({ code: r.code, details: r.details, metadata: new Metadata() });
    else cb(null, r);
  }

  private onConnect(call: ServerDuplexStream<AgentMessage, ControllerMessage>): void {
    const auth = String(call.metadata.get('authorization')[0] ?? '');
    const session: ScriptedSession = { index: this.sessions.length + 1, authorization: auth, call, ended: false };
    this.sessions.push(session);
    const end = (code: grpcStatus, details: string) => {
      session.ended = true;
      call.emit('error', { code, details, metadata: new Metadata() });
    };
    if (this.refuse) return end(this.refuse.code, this.refuse.details);
    const expected = this.opts.credential;
    if (expected !== undefined && auth !== `Bearer ${expected}`) return end(grpcStatus.UNAUTHENTICATED, 'device revoked or unknown: re-enroll');
    call.on('data', (m: AgentMessage) => {
      if (!m.msg || session.ended) return;
      this.received.push({ session: session.index, at: Date.now(), msg: m.msg });
      if (m.msg.$case === 'hello') {
        if (session.hello) return end(grpcStatus.INVALID_ARGUMENT, 'a second Hello');
        session.hello = m.msg.value;
        call.write({
          msg: { $case: 'welcome', value: { deviceId: 'dev-1', deviceName: 'device-one', heartbeatIntervalMs: this.opts.heartbeatIntervalMs ?? 200, serverTimeMs: Date.now(), controllerVersion: 'scripted', artifactsUrl: '', reconnectWindowMs: this.reconnectWindowMs ?? this.opts.reconnectWindowMs ?? 0 } },
        });
        return;
      }
      if (!session.hello) return end(grpcStatus.INVALID_ARGUMENT, 'the first message must be a Hello');
      if (!this.autoAck) return;
      if (m.msg.$case === 'jobUpdate') call.write({ msg: { $case: 'ack', value: { ids: [m.msg.value.updateId] } } });
      if (m.msg.$case === 'stateReport') call.write({ msg: { $case: 'ack', value: { ids: [m.msg.value.reportId] } } });
      if (m.msg.$case === 'localChange') call.write({ msg: { $case: 'ack', value: { ids: [m.msg.value.changeId] } } });
    });
    call.on('end', () => {
      session.ended = true;
      call.end();
    });
    call.on('error', () => {
      session.ended = true;
    });
    call.on('cancelled', () => {
      session.ended = true;
    });
  }
}
