import { Global, Module } from '@nestjs/common';
import { AGENT_DELIVERY, type AgentDelivery, JOB_SCHEDULER, type JobScheduler } from '../delivery/agent-delivery.port.js';
import { GrpcServer } from './grpc-server.service.js';

// Scaffold implementations of the delivery ports: replaced by the real gateway.
const noDelivery: AgentDelivery = { kick: async () => {}, disconnect: async () => {} };
const noScheduler: JobScheduler = { jobCreated: async () => {}, cancelRequested: async () => {} };

/** What agents talk to (gRPC) and the time-driven work (BullMQ). */
@Global()
@Module({
  providers: [GrpcServer, { provide: AGENT_DELIVERY, useValue: noDelivery }, { provide: JOB_SCHEDULER, useValue: noScheduler }],
  exports: [GrpcServer, AGENT_DELIVERY, JOB_SCHEDULER],
})
export class GatewayModule {}
