import { Global, Module } from '@nestjs/common';
import { AGENT_DELIVERY, JOB_SCHEDULER } from '../delivery/agent-delivery.port.js';
import { AgentStreams } from './connect/agent-streams.service.js';
import { DeliveryPass } from './connect/delivery-pass.service.js';
import { DeviceAuth } from './connect/device-auth.service.js';
import { RevocationSweep } from './connect/revocation-sweep.service.js';
import { AuthFailureLimiter } from '../security/auth-failure-limiter.service.js';
import { DeviceCa } from '../security/device-ca.service.js';
import { SessionRegistry } from './connect/session-registry.service.js';
import { CertificateRenewal } from './enroll/certificate-renewal.service.js';
import { EnrollmentRedemption } from './enroll/enrollment-redemption.service.js';
import { GatewayLifecycle } from './gateway-lifecycle.service.js';
import { GatewayMetrics } from './gateway-metrics.service.js';
import { GrpcServer } from './grpc-server.service.js';
import { BullmqJobScheduler } from './jobs/bullmq-job-scheduler.service.js';
import { JobSweeper } from './jobs/job-sweeper.service.js';
import { JobTimerHandlers } from './jobs/job-timer.handlers.js';
import { JobTimerQueue } from './jobs/job-timer.queue.js';
import { JobTimerWorker } from './jobs/job-timer.worker.js';
import { JobUpdates } from './jobs/job-updates.service.js';
import { LocalChanges } from './local/local-changes.service.js';
import { PresenceService } from './presence/presence.service.js';
import { DeviceRouting } from './routing/device-routing.service.js';
import { RoutedAgentDelivery } from './routing/routed-agent-delivery.service.js';
import { StateReports } from './state/state-reports.service.js';

/** What agents talk to (gRPC), the routing between replicas, and the time-driven work (BullMQ). */
@Global()
@Module({
  providers: [
    GrpcServer,
    GatewayLifecycle,
    GatewayMetrics,
    EnrollmentRedemption,
    CertificateRenewal,
    DeviceAuth,
    DeviceCa,
    RevocationSweep,
    AgentStreams,
    SessionRegistry,
    DeliveryPass,
    PresenceService,
    DeviceRouting,
    JobTimerQueue,
    JobTimerWorker,
    JobTimerHandlers,
    JobSweeper,
    JobUpdates,
    StateReports,
    LocalChanges,
    RoutedAgentDelivery,
    AuthFailureLimiter,
    BullmqJobScheduler,
    { provide: AGENT_DELIVERY, useExisting: RoutedAgentDelivery },
    { provide: JOB_SCHEDULER, useExisting: BullmqJobScheduler },
  ],
  exports: [AGENT_DELIVERY, JOB_SCHEDULER, AuthFailureLimiter, DeviceAuth, JobTimerQueue],
})
export class GatewayModule {}
