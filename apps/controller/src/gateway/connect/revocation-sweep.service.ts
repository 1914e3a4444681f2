import { Injectable, Logger } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { Clock } from '../../common/clock.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { SessionRegistry } from './session-registry.service.js';

/** How often each replica looks for revocations (protocol.md: revocation takes effect within 1 s). */
export const REVOCATION_SWEEP_MS = 500;
/**
 * How far back each sweep looks: revokedAt is the revoking replica's clock before its commit,
 * so a slow commit or a clock a little apart must not hide a revocation between two sweeps.
 */
const LOOKBACK_MS = 10_000;

/**
 * The backstop for the `disconnect` pub/sub message, which Redis does not keep: every
 * REVOCATION_SWEEP_MS each replica reads the devices, credentials and certificates revoked
 * recently (indexed on revokedAt) and ends the streams it holds that were let in with one.
 */
@Injectable()
export class RevocationSweep {
  private readonly log = new Logger('Revocations');
  private timer?: NodeJS.Timeout;
  private running = false;

  constructor(
    private readonly prisma: PrismaService,
    private readonly registry: SessionRegistry,
    private readonly clock: Clock,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.sweep(), REVOCATION_SWEEP_MS);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async sweep(): Promise<void> {
    if (this.running || this.registry.size === 0) return;
    this.running = true;
    try {
      const since = new Date(this.clock.now().getTime() - LOOKBACK_MS);
      const where = { revokedAt: { gte: since } };
      const [devices, credentials, certificates] = await Promise.all([
        this.prisma.device.findMany({ where, select: { id: true } }),
        this.prisma.deviceCredential.findMany({ where, select: { id: true, deviceId: true } }),
        this.prisma.deviceCertificate.findMany({ where, select: { id: true, deviceId: true } }),
      ]);
      for (const d of devices) this.registry.get(d.id)?.close({ code: status.UNAUTHENTICATED, details: 'device revoked' });
      for (const c of credentials) {
        const s = this.registry.get(c.deviceId);
        if (s?.device.credentialId === c.id) s.close({ code: status.UNAUTHENTICATED, details: 'device credential revoked' });
      }
      for (const c of certificates) {
        const s = this.registry.get(c.deviceId);
        if (s?.device.certificateId === c.id) s.close({ code: status.UNAUTHENTICATED, details: 'device certificate revoked' });
      }
    } catch (err) {
      this.log.warn(`revocation sweep failed: ${(err as Error).message}; trying again in ${REVOCATION_SWEEP_MS} ms`);
    } finally {
      this.running = false;
    }
  }
}
