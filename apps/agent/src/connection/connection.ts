import { type ChannelCredentials, type ClientDuplexStream, Metadata, credentials, status as grpcStatus } from '@grpc/grpc-js';
import { type AgentMessage, AgentServiceClient, type ControllerMessage, type Hello, type Welcome } from '@ibex/proto';
import type { Backoff } from '../common/backoff.js';
import type { Logger } from '../common/log.js';
import type { ControllerUrl } from './controller-url.js';

export const DEFAULT_HEARTBEAT_MS = 15_000;
/** Without a Welcome this long after Hello, the attempt is given up and retried. */
const WELCOME_TIMEOUT_MS = 30_000;
/** At most this long a Welcome's reconnect window is followed (timers overflow past 2^31 ms; ours asks for at most 300 s). */
const MAX_RECONNECT_WINDOW_MS = 3_600_000;

export interface ConnectionStatus {
  connected: boolean;
  connectedSinceMs?: number;
  lastError?: string;
  lastErrorAtMs?: number;
  /** The controller refused the credential: the device was revoked or is unknown. */
  credentialRefused: boolean;
  nextRetryAtMs?: number;
  deviceId?: string;
  deviceName?: string;
}

export interface ConnectionOptions {
  url: ControllerUrl;
  caPem?: Buffer;
  credential: string;
  /** The device's key and certificate for mutual TLS, read at each attempt (renewal replaces them). */
  clientCertificate?: () => { keyPem: string; certificatePem: string } | undefined;
  log: Logger;
  backoff: Backoff;
  /** Awaited before each attempt (errors are the callback's to handle): refreshes what Hello reads. */
  beforeHello?: () => Promise<unknown>;
  /** Built for each attempt, so it carries the journal as it is then. */
  hello: () => Hello;
  /** After a Welcome: the place to re-send what is unacknowledged. */
  onWelcome: (w: Welcome) => void;
  onMessage: (m: ControllerMessage) => void;
  onStatus: (s: ConnectionStatus) => void;
  now?: () => number;
}

interface Session {
  call: ClientDuplexStream<AgentMessage, ControllerMessage>;
  client: AgentServiceClient;
  welcomed: boolean;
  heartbeat?: NodeJS.Timeout;
  /** From the Welcome: how widely to spread the first reconnect once this stream breaks. */
  reconnectWindowMs?: number;
}

/**
 * The one stream to the controller: Hello, then heartbeats at the Welcome's interval; on any
 * end, a new attempt after a jittered exponential backoff (at the longest backoff while the
 * controller refuses the credential). Messages are sent only once welcomed; what is not sent
 * stays in the journal and goes out after the next Welcome.
 */
export class Connection {
  private session?: Session;
  private stopped = false;
  private readonly stopCtl = new AbortController();
  private loop?: Promise<void>;
  private status: ConnectionStatus = { connected: false, credentialRefused: false };
  private readonly now: () => number;

  constructor(private readonly opts: ConnectionOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.loop ??= this.run();
  }

  get connected(): boolean {
    return this.session?.welcomed === true;
  }

  /** Writes a message when the stream is up and welcomed; false otherwise (the journal keeps it). */
  send(msg: AgentMessage): boolean {
    const s = this.session;
    if (!s?.welcomed) return false;
    s.call.write(msg);
    return true;
  }

  /** Half-closes the stream (lets queued writes go out), then closes the channel. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopCtl.abort();
    const s = this.session;
    if (s) {
      clearInterval(s.heartbeat);
      s.call.end();
      const ended = new Promise<void>((resolve) => s.call.once('status', () => resolve()));
      await Promise.race([ended, new Promise((r) => setTimeout(r, 2000).unref())]);
      s.call.cancel();
      s.client.close();
    }
    await this.loop;
    this.setStatus({ connected: false, connectedSinceMs: undefined, nextRetryAtMs: undefined });
  }

  private setStatus(patch: Partial<ConnectionStatus>): void {
    this.status = { ...this.status, ...patch };
    this.opts.onStatus(this.status);
  }

  private channelCredentials(): ChannelCredentials {
    if (!this.opts.url.secure) return credentials.createInsecure();
    const mine = this.opts.clientCertificate?.();
    return mine ? credentials.createSsl(this.opts.caPem ?? null, Buffer.from(mine.keyPem), Buffer.from(mine.certificatePem)) : credentials.createSsl(this.opts.caPem ?? null);
  }

  private async run(): Promise<void> {
    const { log, backoff } = this.opts;
    while (!this.stopped) {
      await this.opts.beforeHello?.();
      if (this.stopped) break;
      const end = await this.attempt();
      if (this.stopped) break;
      let delay: number;
      if (end.code === grpcStatus.UNAUTHENTICATED) {
        delay = backoff.longest();
        log.error('the controller refused this device: device revoked or unknown: re-enroll (ibex-agent enroll --force ...)', { details: end.details, retryInMs: delay });
        this.setStatus({ credentialRefused: true });
      } else if (end.code === grpcStatus.RESOURCE_EXHAUSTED) {
        // Too many failed attempts from here (the controller's rate limit): wait at least what it says.
        const wait = /wait (\d+) s/.exec(end.details);
        delay = Math.max(backoff.longest(), wait ? Number(wait[1]) * 1000 : 0);
        log.warn('the controller refuses attempts for now: too many failed ones from this address or with this credential', { details: end.details, retryInMs: delay });
      } else {
        // A welcomed stream broke: the whole fleet may have lost the controller at this moment,
        // so the first try is spread over the window the controller asked for in its Welcome.
        if (end.welcomed) backoff.reset();
        delay = backoff.next(end.welcomed ? Math.min(end.reconnectWindowMs, MAX_RECONNECT_WINDOW_MS) : 0);
        log.warn('stream to the controller ended', { code: grpcStatus[end.code] ?? end.code, details: end.details, retryInMs: delay });
      }
      this.setStatus({ connected: false, connectedSinceMs: undefined, lastError: end.message, lastErrorAtMs: this.now(), nextRetryAtMs: this.now() + delay });
      await sleep(delay, this.stopCtl.signal);
    }
  }

  /** One stream, from Hello to its end. */
  private attempt(): Promise<{ code: number; details: string; message: string; welcomed: boolean; reconnectWindowMs: number }> {
    const { url, log } = this.opts;
    const client = new AgentServiceClient(url.target, this.channelCredentials(), {
      // Heartbeats go one way; keepalive pings notice a controller that vanished without a FIN.
      'grpc.keepalive_time_ms': 60_000,
      'grpc.keepalive_timeout_ms': 20_000,
      'grpc.enable_retries': 0,
      // A DesiredState can be large (the controller accepts up to 32 MiB).
      'grpc.max_receive_message_length': 32 * 1024 * 1024,
    });
    const md = new Metadata();
    md.set('authorization', `Bearer ${this.opts.credential}`);
    const call = client.connect(md);
    const session: Session = { call, client, welcomed: false };
    this.session = session;
    log.debug('connecting', { target: url.target, tls: url.secure });

    return new Promise((resolve) => {
      let done = false;
      const welcomeTimer = setTimeout(() => {
        log.warn('no Welcome from the controller in time; reconnecting', { timeoutMs: WELCOME_TIMEOUT_MS });
        call.cancel();
      }, WELCOME_TIMEOUT_MS);
      const finish = (code: number, details: string) => {
        if (done) return;
        done = true;
        clearTimeout(welcomeTimer);
        clearInterval(session.heartbeat);
        if (this.session === session) this.session = undefined;
        call.cancel();
        client.close();
        const message = code === grpcStatus.UNAUTHENTICATED ? `device revoked or unknown: re-enroll (${details})` : `${grpcStatus[code] ?? code}: ${details}`;
        resolve({ code, details, message, welcomed: session.welcomed, reconnectWindowMs: session.reconnectWindowMs ?? 0 });
      };
      call.on('data', (m: ControllerMessage) => {
        if (m.msg?.$case === 'welcome') {
          if (session.welcomed) return;
          clearTimeout(welcomeTimer);
          session.welcomed = true;
          const w = m.msg.value;
          session.reconnectWindowMs = w.reconnectWindowMs;
          const every = w.heartbeatIntervalMs > 0 ? w.heartbeatIntervalMs : DEFAULT_HEARTBEAT_MS;
          let seq = 0;
          session.heartbeat = setInterval(() => this.send({ msg: { $case: 'heartbeat', value: { seq: ++seq, sentAtMs: this.now() } } }), every);
          log.info('connected to the controller', { target: url.target, deviceId: w.deviceId, deviceName: w.deviceName, heartbeatMs: every });
          this.setStatus({ connected: true, connectedSinceMs: this.now(), credentialRefused: false, nextRetryAtMs: undefined, deviceId: w.deviceId, deviceName: w.deviceName });
          this.opts.onWelcome(w);
          return;
        }
        if (!session.welcomed) {
          log.warn('message before Welcome ignored', { kind: m.msg?.$case });
          return;
        }
        this.opts.onMessage(m);
      });
      call.on('error', (err: Error & { code?: number; details?: string }) => finish(err.code ?? grpcStatus.UNKNOWN, err.details ?? err.message));
      call.on('status', (s: { code: number; details: string }) => finish(s.code, s.details));
      // The controller ending its side cleanly still ends the session.
      call.on('end', () => finish(grpcStatus.OK, 'the controller ended the stream'));
      call.write({ msg: { $case: 'hello', value: this.opts.hello() } });
    });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
