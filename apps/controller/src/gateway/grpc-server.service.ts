import { readFile } from 'node:fs/promises';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { type AgentServiceServer, type EnrollRequest, type EnrollResponse } from '@ibex/proto';
import { CONFIG, type Config } from '../config/config.js';
import { enrollRequestSchema, parseAgentInput } from './agent-messages.schema.js';
import { agentServiceDefinition, UndecodableFrame } from './agent-service-definition.js';
import { AgentStreams } from './connect/agent-streams.service.js';
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
    private readonly streams: AgentStreams,
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
    };
    server.addService(agentServiceDefinition, handlers);
    const creds = this.config.grpc.tls
      ? ServerCredentials.createSsl(null, [{ cert_chain: await readFile(this.config.grpc.tls.certFile), private_key: await readFile(this.config.grpc.tls.keyFile) }], false)
      : ServerCredentials.createInsecure();
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${this.config.grpc.host}:${this.config.grpc.port}`, creds, (err, port) =>
        err ? reject(new Error(`cannot listen for agents on ${this.config.grpc.host}:${this.config.grpc.port}: ${err.message}; free the port or set IBEX_GRPC_PORT`)) : resolve(port),
      ),
    );
    this.server = server;
    this.log.log(`gRPC agent gateway listening on ${this.config.grpc.host}:${this.port}${this.config.grpc.tls ? ' (TLS)' : ''}`);
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
    try {
      if (call.request instanceof UndecodableFrame) throw call.request.toError();
      const input = parseAgentInput(enrollRequestSchema, call.request, 'EnrollRequest');
      callback(null, await this.enrollment.redeem(input));
    } catch (err) {
      const failure = grpcFailure(err);
      if (failure.code === status.INTERNAL || failure.code === status.UNAVAILABLE) this.log.error(`Enroll: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      callback(failure);
    }
  }
}
