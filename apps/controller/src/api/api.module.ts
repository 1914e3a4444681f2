import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AdminTokenBootstrap } from './api-tokens/admin-token-bootstrap.service.js';
import { ApiTokensController } from './api-tokens/api-tokens.controller.js';
import { ApiTokensService } from './api-tokens/api-tokens.service.js';
import { ArtifactsController } from './artifacts/artifacts.controller.js';
import { AuditLogController } from './audit-log/audit-log.controller.js';
import { AuditLogService } from './audit-log/audit-log.service.js';
import { ApiAuthGuard } from './auth/api-auth.guard.js';
import { DesiredStateController } from './desired-state/desired-state.controller.js';
import { DesiredStateService } from './desired-state/desired-state.service.js';
import { DeviceIdentityController } from './device-identity/device-identity.controller.js';
import { DeviceIdentityService } from './device-identity/device-identity.service.js';
import { DevicesController } from './devices/devices.controller.js';
import { DevicesService } from './devices/devices.service.js';
import { EnrollmentTokensController } from './enrollment-tokens/enrollment-tokens.controller.js';
import { EnrollmentTokensService } from './enrollment-tokens/enrollment-tokens.service.js';
import { FleetController } from './fleet/fleet.controller.js';
import { FleetService } from './fleet/fleet.service.js';
import { GenerationsController } from './generations/generations.controller.js';
import { GenerationsService } from './generations/generations.service.js';
import { ImageBuildsController } from './image-builds/image-builds.controller.js';
import { ImageBuildsService } from './image-builds/image-builds.service.js';
import { HealthController } from './health/health.controller.js';
import { HealthService } from './health/health.service.js';
import { JobsController } from './jobs/jobs.controller.js';
import { JobsService } from './jobs/jobs.service.js';
import { PlanController } from './plan/plan.controller.js';
import { PlanService } from './plan/plan.service.js';

export const apiControllers = [
  HealthController,
  ApiTokensController,
  EnrollmentTokensController,
  DevicesController,
  DeviceIdentityController,
  FleetController,
  DesiredStateController,
  JobsController,
  GenerationsController,
  PlanController,
  ImageBuildsController,
  AuditLogController,
  ArtifactsController,
];

/**
 * Operator-facing REST API under /api/v1 (plus /healthz and /readyz). Controllers are thin;
 * services hold the logic and throw DomainErrors, which the one filter set up in
 * configure-http.ts renders. Every route needs an API token unless it is @Public().
 */
@Module({
  controllers: apiControllers,
  providers: [
    { provide: APP_GUARD, useClass: ApiAuthGuard },
    AdminTokenBootstrap,
    ApiTokensService,
    EnrollmentTokensService,
    DevicesService,
    DeviceIdentityService,
    FleetService,
    DesiredStateService,
    JobsService,
    GenerationsService,
    PlanService,
    ImageBuildsService,
    AuditLogService,
    HealthService,
  ],
})
export class ApiModule {}
