import { readFile } from 'node:fs/promises';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Server, ServerCredentials, experimental, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { type AgentServiceServer, type EnrollRequest, type EnrollResponse, type RenewCertificateRequest, type RenewCertificateResponse } from '@ibex/proto';
import { Unauthenticated } from '../common/errors.js';
import { CONFIG, type Config } from '../config/config.js';
import { AuthFailureLimiter, peerAddress } from '../security/auth-failure-limiter.service.js';
import { DeviceCa } from '../security/device-ca.service.js';
import { enrollRequestSchema, parseAgentInput, renewCertificateSchema } from './agent-messages.schema.js';
import { agentServiceDefinition, UndecodableFrame } from './agent-service-definition.js';
import { AgentStreams } from './connect/agent-streams.service.js';
import { DeviceAuth } from './connect/device-auth.service.js';
import { CertificateRenewal } from './enroll/certificate-renewal.service.js';
import { EnrollmentRedemption } from './enroll/enrollment-redemption.service.js';
import { grpcFailure } from './grpc-status.js';

/** The gRPC server agents connect to, on its own port. `port` is known once started. */
@Injectable()
export class GrpcServer {
  private readonly log = new Logger('Grpc');
  private server?: Server;
  port = 0;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly enrollment: EnrollmentRedemption,
    private readonly renewal: CertificateRenewal,
    private readonly streams: AgentStreams,
    private readonly auth: DeviceAuth,
    private readonly limiter: AuthFailureLimiter,
    private readonly ca: DeviceCa,
  ) {}

  async start(): Promise<void> {
    const server = new Server({
      // Keepalive pings find dead connections; agents may ping every 20 s.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 20_000,
      // The largest messages validation allows (64 sections x 256 KiB of detail) must arrive.
      'grpc.max_receive_message_length': 32 * 1024 * 1024,
    });
    const handlers: AgentServiceServer = {
      enroll: (call, callback) => void this.enroll(call, callback),
      connect: (call) => this.streams.handle(call),
      renewCertificate: (call, callback) => void this.renew(call, callback),
    };
    server.addService(agentServiceDefinition, handlers);
    // Loaded (or made) at start either way: enrollment signs CSRs with it.
    const caPem = await this.ca.certificatePem();
    const creds = await this.credentials(Buffer.from(caPem));
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${this.config.grpc.host}:${this.config.grpc.port}`, creds, (err, port) =>
        err ? reject(new Error(`cannot listen for agents on ${this.config.grpc.host}:${this.config.grpc.port}: ${err.message}; free the port or set IBEX_GRPC_PORT`)) : resolve(port),
      ),
    );
    this.server = server;
    const mode = this.config.grpc.mtls ? ' (mutual TLS)' : this.config.grpc.tls ? ' (TLS)' : '';
    this.log.log(`gRPC agent gateway listening on ${this.config.grpc.host}:${this.port}${mode}`);
  }

  /**
   * Plaintext, server TLS, or mutual TLS. Under mTLS the server asks every client for a
   * certificate and TLS verifies it against the device CA, but one without (an agent that is
   * enrolling) still gets through the handshake: Enroll needs none, and Connect and
   * RenewCertificate refuse it with UNAUTHENTICATED and a message, instead of a handshake error
   * the agent's operator could not read.
   */
  private async credentials(deviceCaPem: Buffer): Promise<ServerCredentials> {
    const tls = this.config.grpc.tls;
    if (!tls) return ServerCredentials.createInsecure();
    const [cert, key] = await Promise.all([readFile(tls.certFile), readFile(tls.keyFile)]);
    if (!this.config.grpc.mtls) return ServerCredentials.createSsl(null, [{ cert_chain: cert, private_key: key }], false);
    // Answered on the next tick, not inside add*Listener: grpc-js registers the watcher that
    // installs the TLS context only after these calls return, and would miss a synchronous
    // answer (every connection would then be dropped as "credentials not loaded").
    const provider: experimental.CertificateProvider = {
      addCaCertificateListener: (l) => setImmediate(() => l({ caCertificate: deviceCaPem })),
      removeCaCertificateListener: () => {},
      addIdentityCertificateListener: (l) => setImmediate(() => l({ certificate: cert, privateKey: key })),
      removeIdentityCertificateListener: () => {},
    };
    return experimental.createCertificateProviderServerCredentials(provider, provider, false);
  }

  /** Waits up to 2 s for calls to finish (streams were ended before), then forces. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 2000);
      server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private async enroll(call: ServerUnaryCall<EnrollRequest, EnrollResponse>, callback: sendUnaryData<EnrollResponse>): Promise<void> {
    const source = peerAddress(call.getPeer());
    const token = typeof call.request.enrollmentToken === 'string' ? call.request.enrollmentToken : '';
    try {
      if (call.request instanceof UndecodableFrame) throw call.request.toError();
      await this.limiter.check('enroll', source, token || undefined);
      const input = parseAgentInput(enrollRequestSchema, call.request, 'EnrollRequest');
      try {
        callback(null, await this.enrollment.redeem(input));
      } catch (err) {
        if (err instanceof Unauthenticated) await this.limiter.failed('enroll', source, token);
        throw err;
      }
    } catch (err) {
      this.answerFailure('Enroll', err, callback);
    }
  }

  private async renew(call: ServerUnaryCall<RenewCertificateRequest, RenewCertificateResponse>, callback: sendUnaryData<RenewCertificateResponse>): Promise<void> {
    try {
      const device = await this.auth.authenticate(call);
      if (call.request instanceof UndecodableFrame) throw call.request.toError();
      const input = parseAgentInput(renewCertificateSchema, call.request, 'RenewCertificateRequest');
      callback(null, await this.renewal.renew(device, input.csrPem));
    } catch (err) {
      this.answerFailure('RenewCertificate', err, callback);
    }
  }

  private answerFailure(rpc: string, err: unknown, callback: sendUnaryData<never>): void {
    const failure = grpcFailure(err);
    if (failure.code === status.INTERNAL || failure.code === status.UNAVAILABLE) this.log.error(`${rpc}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    callback(failure);
  }
}
