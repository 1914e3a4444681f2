import { type DynamicModule, Module } from '@nestjs/common';
import { ApiModule } from './api/api.module.js';
import { ArtifactsModule } from './artifacts/artifacts.module.js';
import { AuditModule } from './audit/audit.module.js';
import { CommonModule } from './common/common.module.js';
import { ConfigModule } from './config/config.module.js';
import type { Config } from './config/config.js';
import { GatewayModule } from './gateway/gateway.module.js';
import { ImagesModule } from './images/images.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { PrismaModule } from './prisma/prisma.module.js';
import { RedisModule } from './redis/redis.module.js';
import { RolloutsModule } from './rollouts/rollouts.module.js';

/**
 * The controller: one service layer, two thin entry points. ApiModule is what operators call
 * (REST); GatewayModule is what agents talk to (gRPC) plus the time-driven work (BullMQ).
 */
@Module({})
export class AppModule {
  static forRoot(config: Config): DynamicModule {
    return {
      module: AppModule,
      imports: [ConfigModule.forRoot(config), CommonModule, PrismaModule, MetricsModule, RedisModule, AuditModule, ArtifactsModule, GatewayModule, ImagesModule, ApiModule, RolloutsModule],
    };
  }
}
