import { Injectable, Logger, Module, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { RolloutDriver } from './rollout-driver.service.js';
import { RolloutQueue } from './rollout-queue.js';
import { RolloutsController } from './rollouts.controller.js';
import { RolloutsService } from './rollouts.service.js';
import { SchedulesController } from './schedules.controller.js';
import { SchedulesService } from './schedules.service.js';

/** Starts the driver's sweep and the rollout queue's worker; stops them before Postgres and Redis close. */
@Injectable()
export class RolloutsLifecycle implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly log = new Logger('Rollouts');
  constructor(
    private readonly driver: RolloutDriver,
    private readonly queue: RolloutQueue,
    private readonly schedules: SchedulesService,
  ) {}

  onApplicationBootstrap(): void {
    this.queue.start(async (d, jobId) => {
      if (d.name === 'wake') await this.driver.tick(d.rolloutId);
      else await this.schedules.fire(d.scheduleId, jobId);
    });
    this.driver.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.driver.stop().catch((err: Error) => this.log.error(`shutdown: stopping the rollout driver: ${err.message}`));
    await this.queue.close().catch((err: Error) => this.log.error(`shutdown: closing the rollout queue: ${err.message}`));
  }
}

export const rolloutControllers = [RolloutsController, SchedulesController];

/** Fleet rollouts and recurring schedules (docs/rollouts.md). */
@Module({
  controllers: rolloutControllers,
  providers: [RolloutQueue, RolloutDriver, RolloutsService, SchedulesService, RolloutsLifecycle],
})
export class RolloutsModule {}
