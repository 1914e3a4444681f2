import { Injectable, Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { RedisService } from '../../redis/redis.service.js';

/**
 * What replicas tell the holder of a device's stream (protocol.md "Routing between replicas").
 * Each is a hint: the holder re-reads Postgres, except `cancel`, which names the attempt that
 * ran out of time (there is no row state to read it from once the job has moved on).
 */
const routeMessageSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('kick') }),
  // With credential/certificate: only a stream let in with that one (it was revoked).
  z.object({ t: z.literal('disconnect'), reason: z.string(), credential: z.string().optional(), certificate: z.string().optional() }),
  z.object({ t: z.literal('takeover'), session: z.string() }),
  z.object({ t: z.literal('cancel'), job: z.string(), reason: z.string() }),
]);
export type RouteMessage = z.infer<typeof routeMessageSchema>;
export type RouteHandler = (message: RouteMessage) => void;

/**
 * Redis pub/sub between replicas: one channel per device (`<prefix>:dev:<deviceId>`), to which
 * only the replica holding the device's stream subscribes, on one dedicated connection.
 */
@Injectable()
export class DeviceRouting {
  private readonly log = new Logger('Routing');
  private sub?: Redis;
  private readonly handlers = new Map<string, RouteHandler>();
  private readonly reconnectListeners: (() => void)[] = [];

  constructor(private readonly redis: RedisService) {}

  channel(deviceId: string): string {
    return this.redis.key('dev', deviceId);
  }

  async publish(deviceId: string, message: RouteMessage): Promise<void> {
    await this.redis.client.publish(this.channel(deviceId), JSON.stringify(message));
  }

  /** Starts delivering the device's messages to `handler` (resolves once subscribed). */
  async listen(deviceId: string, handler: RouteHandler): Promise<void> {
    const channel = this.channel(deviceId);
    this.handlers.set(channel, handler);
    await this.subscriber().subscribe(channel);
  }

  async unlisten(deviceId: string): Promise<void> {
    const channel = this.channel(deviceId);
    if (!this.handlers.delete(channel) || !this.sub) return;
    await this.sub.unsubscribe(channel);
  }

  /**
   * Called after the subscriber connection came back from an outage and is subscribed again.
   * Whatever was published to this replica's channels meanwhile is lost (pub/sub keeps
   * nothing), so the listener catches up from Postgres.
   */
  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  /** Stops delivering; RedisService closes the connection itself (it made it). */
  async close(): Promise<void> {
    this.handlers.clear();
    const sub = this.sub;
    this.sub = undefined;
    await sub?.unsubscribe().catch(() => {});
  }

  private subscriber(): Redis {
    if (this.sub) return this.sub;
    const sub = this.redis.subscriber();
    sub.on('message', (channel: string, text: string) => this.deliver(channel, text));
    let lost = false;
    sub.on('close', () => (lost = true));
    sub.on('ready', () => {
      if (!lost || this.sub !== sub) return;
      lost = false;
      void this.resubscribed(sub);
    });
    this.sub = sub;
    return sub;
  }

  /**
   * ioredis re-sends SUBSCRIBE for the old channels when it reconnects, without waiting for the
   * answers: subscribing again here (harmless) and awaiting it means the channels are live
   * before the listeners look at Postgres, so nothing published after that look is missed.
   */
  private async resubscribed(sub: Redis): Promise<void> {
    const channels = [...this.handlers.keys()];
    try {
      if (channels.length) await sub.subscribe(...channels);
    } catch (err) {
      this.log.warn(`re-subscribing after a Redis outage failed: ${(err as Error).message}`);
      return;
    }
    this.log.log(`Redis subscriber reconnected: catching up ${channels.length} device channel(s)`);
    for (const listener of this.reconnectListeners) listener();
  }

  private deliver(channel: string, text: string): void {
    const handler = this.handlers.get(channel);
    if (!handler) return;
    let message: RouteMessage;
    try {
      message = routeMessageSchema.parse(JSON.parse(text));
    } catch {
      this.log.warn(`ignored a malformed message on ${channel}: ${text.slice(0, 200)}`);
      return;
    }
    handler(message);
  }
}
