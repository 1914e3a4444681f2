import { Injectable, Logger } from '@nestjs/common';
import type { AgentDelivery, DisconnectScope } from '../../delivery/agent-delivery.port.js';
import { DeviceRouting, type RouteMessage } from './device-routing.service.js';

/**
 * AGENT_DELIVERY: publishes to the device's channel; the replica holding its stream (if any)
 * acts. A publish that fails is logged, not thrown: callers have already committed, and the
 * device gets everything on its next Hello anyway.
 */
@Injectable()
export class RoutedAgentDelivery implements AgentDelivery {
  private readonly log = new Logger('AgentDelivery');

  constructor(private readonly routing: DeviceRouting) {}

  kick(deviceId: string): Promise<void> {
    return this.publish(deviceId, { t: 'kick' });
  }

  disconnect(deviceId: string, reason: string, scope: DisconnectScope = {}): Promise<void> {
    return this.publish(deviceId, {
      t: 'disconnect',
      reason,
      ...(scope.credentialId ? { credential: scope.credentialId } : {}),
      ...(scope.certificateId ? { certificate: scope.certificateId } : {}),
    });
  }

  private async publish(deviceId: string, message: RouteMessage): Promise<void> {
    try {
      await this.routing.publish(deviceId, message);
    } catch (err) {
      this.log.error(`could not reach device ${deviceId} through Redis (${message.t}): ${(err as Error).message}; it catches up when it reconnects`);
    }
  }
}
