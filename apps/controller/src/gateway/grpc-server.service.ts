import { readFile } from 'node:fs/promises';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { AgentServiceService } from '@ibex/proto';
import { CONFIG, type Config } from '../config/config.js';

/** The gRPC server agents connect to, on its own port. `port` is known once bootstrapped. */
@Injectable()
export class GrpcServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('Grpc');
  private server?: Server;
  port = 0;

  constructor(@Inject(CONFIG) private readonly config: Config) {}

  async onApplicationBootstrap(): Promise<void> {
    const server = new Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 10_000 });
    // Scaffold: the real handlers are added by the gateway.
    server.addService(AgentServiceService, {
      enroll: (_call: unknown, cb: (err: Error) => void) => cb(new Error('not implemented')),
      connect: (call: { end(): void }) => call.end(),
    });
    const creds = this.config.grpc.tls
      ? ServerCredentials.createSsl(null, [{ cert_chain: await readFile(this.config.grpc.tls.certFile), private_key: await readFile(this.config.grpc.tls.keyFile) }], false)
      : ServerCredentials.createInsecure();
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${this.config.grpc.host}:${this.config.grpc.port}`, creds, (err, port) => (err ? reject(err) : resolve(port))),
    );
    this.server = server;
    this.log.log(`gRPC agent gateway listening on ${this.config.grpc.host}:${this.port}${this.config.grpc.tls ? ' (TLS)' : ''}`);
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
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
}
