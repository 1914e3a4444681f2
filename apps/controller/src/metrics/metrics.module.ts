import { Global, Module } from '@nestjs/common';
import { DatabaseMetrics } from './database-metrics.service.js';
import { MetricsController } from './metrics.controller.js';
import { MetricsService } from './metrics.service.js';

@Global()
@Module({ controllers: [MetricsController], providers: [MetricsService, DatabaseMetrics], exports: [MetricsService] })
export class MetricsModule {}
