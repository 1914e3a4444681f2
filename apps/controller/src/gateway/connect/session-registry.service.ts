import { Injectable, Logger } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { DeviceRouting, type RouteMessage } from '../routing/device-routing.service.js';
import type { AgentSession } from './agent-session.js';

export const REPLACED = 'replaced by a newer connection';

/**
 * The agent sessions this replica holds, one per device, and the routing that reaches them:
 * the replica holding a device's session is the one subscribed to its channel.
 */
@Injectable()
export class SessionRegistry {
  private readonly log = new Logger('Sessions');
  private readonly sessions = new Map<string, AgentSession>();

  constructor(private readonly routing: DeviceRouting) {
    // Kicks published while the subscriber was cut off from Redis are lost: a delivery pass
    // for every device held here delivers from Postgres what they would have announced.
    routing.onReconnect(() => {
      for (const s of this.sessions.values()) s.requestPass();
    });
  }

  get size(): number {
    return this.sessions.size;
  }

  get(deviceId: string): AgentSession | undefined {
    return this.sessions.get(deviceId);
  }

  all(): AgentSession[] {
    return [...this.sessions.values()];
  }

  /**
   * Makes `session` the device's session here, closing an older one on this replica, then
   * subscribes and tells other replicas (`takeover`) to close theirs.
   */
  async register(session: AgentSession): Promise<void> {
    const older = this.sessions.get(session.deviceId);
    this.sessions.set(session.deviceId, session);
    if (older) older.close({ code: status.ABORTED, details: REPLACED });
    else await this.routing.listen(session.deviceId, (m) => this.route(session.deviceId, m));
    await this.routing.publish(session.deviceId, { t: 'takeover', session: session.id });
  }

  /** Forgets the session if it is still the device's current one; returns whether it was. */
  async unregister(session: AgentSession): Promise<boolean> {
    if (this.sessions.get(session.deviceId) !== session) return false;
    this.sessions.delete(session.deviceId);
    await this.routing.unlisten(session.deviceId);
    return true;
  }

  private route(deviceId: string, m: RouteMessage): void {
    const session = this.sessions.get(deviceId);
    if (!session) return;
    switch (m.t) {
      case 'kick':
        session.requestPass();
        return;
      case 'disconnect':
        if (m.credential && session.device.credentialId !== m.credential) return;
        if (m.certificate && session.device.certificateId !== m.certificate) return;
        this.log.log(`disconnecting device ${session.device.name} (${deviceId}): ${m.reason}`);
        session.close({ code: status.UNAUTHENTICATED, details: m.reason });
        return;
      case 'takeover':
        if (m.session !== session.id) session.close({ code: status.ABORTED, details: REPLACED });
        return;
      case 'cancel':
        session.cancel(m.job, m.reason, true);
        return;
    }
  }
}
