import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { AgentStreams } from './connect/agent-streams.service.js';
import { RevocationSweep } from './connect/revocation-sweep.service.js';
import { GrpcServer } from './grpc-server.service.js';
import { JobSweeper } from './jobs/job-sweeper.service.js';
import { JobTimerQueue } from './jobs/job-timer.queue.js';
import { JobTimerWorker } from './jobs/job-timer.worker.js';
import { PresenceService } from './presence/presence.service.js';
import { RedisService } from '../redis/redis.service.js';
import { DeviceRouting } from './routing/device-routing.service.js';

/**
 * Starts and stops the gateway's parts in one place, in an order that loses nothing: streams
 * end (agents reconnect elsewhere) before presence is flushed, and everything that talks to
 * Postgres or Redis stops before those connections close (GatewayModule is destroyed before
 * PrismaModule and RedisModule).
 */
@Injectable()
export class GatewayLifecycle implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly log = new Logger('Gateway');

  constructor(
    private readonly grpc: GrpcServer,
    private readonly streams: AgentStreams,
    private readonly presence: PresenceService,
    private readonly timerQueue: JobTimerQueue,
    private readonly timerWorker: JobTimerWorker,
    private readonly sweeper: JobSweeper,
    private readonly routing: DeviceRouting,
    private readonly redis: RedisService,
    private readonly revocations: RevocationSweep,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.presence.start();
    this.timerWorker.start();
    this.sweeper.start();
    this.streams.start();
    this.revocations.start();
    await this.grpc.start();
  }

  async onModuleDestroy(): Promise<void> {
    const step = async (what: string, fn: () => Promise<void>): Promise<void> => {
      await fn().catch((err: Error) => this.log.error(`shutdown: ${what}: ${err.message}`));
    };
    this.redis.beginShutdown();
    this.revocations.stop();
    await step('ending agent streams', () => this.streams.stop());
    await step('stopping the gRPC server', () => this.grpc.stop());
    await step('flushing presence', () => this.presence.stop());
    await step('stopping the job sweeper', () => this.sweeper.stop());
    await step('closing the job timer worker', () => this.timerWorker.close());
    await step('closing the job timer queue', () => this.timerQueue.close());
    await step('closing the routing subscriber', () => this.routing.close());
  }
}
