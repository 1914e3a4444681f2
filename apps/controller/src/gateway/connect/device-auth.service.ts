import { Inject, Injectable } from '@nestjs/common';
import type { Metadata } from '@grpc/grpc-js';
import { Clock } from '../../common/clock.js';
import { Unauthenticated } from '../../common/errors.js';
import { hashSecret } from '../../common/secrets.js';
import { CONFIG, type Config } from '../../config/config.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { AuthFailureLimiter, peerAddress } from '../../security/auth-failure-limiter.service.js';
import { fingerprintOf } from '../../security/device-ca.service.js';

export const REENROLL = 're-enroll with `ibex-agent enroll`';
export const CREDENTIAL_REFUSED = `device credential is not recognised or was revoked; ${REENROLL}`;
export const CERTIFICATE_REQUIRED =
  `no valid device certificate: this controller requires mutual TLS (IBEX_GRPC_MTLS), and the client certificate is missing, expired or not issued by its device CA ` +
  `(a bearer credential alone is not accepted); ${REENROLL} --force`;

export interface AuthenticatedDevice {
  id: string;
  name: string;
  /** What the stream was let in with: revoking that one ends the stream. */
  credentialId?: string;
  certificateId?: string;
}

/** The parts of a gRPC call that say who is calling. */
export interface CallerIdentity {
  metadata: Metadata;
  getPeer(): string;
  /** grpc-js: the peer certificate only when TLS verified it against the server's CA list. */
  getAuthContext(): { sslPeerCertificate?: { raw: Buffer } };
}

/**
 * Who is on the other end of a Connect (or RenewCertificate) call: under mutual TLS the client
 * certificate the device CA issued (looked up by its SHA-256 fingerprint; TLS already checked
 * its chain and dates), else the `authorization: Bearer ibxd_...` metadata. Failures count
 * against the source address and the presented secret (AuthFailureLimiter).
 */
@Injectable()
export class DeviceAuth {
  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
    private readonly limiter: AuthFailureLimiter,
  ) {}

  async authenticate(call: CallerIdentity): Promise<AuthenticatedDevice> {
    const source = peerAddress(call.getPeer());
    const cert = this.config.grpc.mtls ? call.getAuthContext().sslPeerCertificate : undefined;
    const [header] = call.metadata.get('authorization');
    const presented = cert ? fingerprintOf(cert.raw) : typeof header === 'string' ? header.trim() : undefined;
    await this.limiter.check('connect', source, presented);
    try {
      if (this.config.grpc.mtls) {
        if (!cert) throw new Unauthenticated(CERTIFICATE_REQUIRED);
        return await this.byCertificate(fingerprintOf(cert.raw));
      }
      return await this.byBearer(header);
    } catch (err) {
      if (err instanceof Unauthenticated) await this.limiter.failed('connect', source, presented);
      throw err;
    }
  }

  /**
   * Whether what let `device` in still stands (the device, and its credential or certificate,
   * not revoked): checked again once a session is registered, so a revocation that committed
   * while its Hello was handled still ends it.
   */
  async stillValid(device: AuthenticatedDevice): Promise<boolean> {
    // One round trip (it is on every Hello's path): the device, and what let it in, not revoked.
    const rows = await this.prisma.$queryRaw<Array<{ ok: boolean }>>`
      SELECT (d."revokedAt" IS NULL
        AND (${device.credentialId ?? null}::uuid IS NULL
             OR EXISTS (SELECT 1 FROM device_credential c WHERE c.id = ${device.credentialId ?? null}::uuid AND c."deviceId" = d.id AND c."revokedAt" IS NULL))
        AND (${device.certificateId ?? null}::uuid IS NULL
             OR EXISTS (SELECT 1 FROM device_certificate c WHERE c.id = ${device.certificateId ?? null}::uuid AND c."deviceId" = d.id AND c."revokedAt" IS NULL))) AS ok
      FROM device d WHERE d.id = ${device.id}::uuid`;
    return rows[0]?.ok === true;
  }

  /** The bearer check for an HTTP `Authorization` header (agents downloading artifacts over REST). */
  async authenticateHeader(header: string | undefined): Promise<AuthenticatedDevice> {
    return this.byBearer(header);
  }

  private async byBearer(header: unknown): Promise<AuthenticatedDevice> {
    if (typeof header !== 'string' || !header) {
      throw new Unauthenticated(`the authorization metadata is missing: send \`authorization: Bearer <device credential>\`, or ${REENROLL}`);
    }
    const m = /^Bearer\s+(ibxd_\S{1,200})$/i.exec(header.trim());
    if (!m) throw new Unauthenticated(`the authorization metadata is not \`Bearer ibxd_...\`; ${REENROLL}`);
    const credential = await this.prisma.deviceCredential.findUnique({
      where: { hash: hashSecret(m[1]!) },
      select: { id: true, revokedAt: true, device: { select: { id: true, name: true, revokedAt: true } } },
    });
    if (!credential || credential.revokedAt || credential.device.revokedAt) throw new Unauthenticated(CREDENTIAL_REFUSED);
    return { id: credential.device.id, name: credential.device.name, credentialId: credential.id };
  }

  private async byCertificate(fingerprint: string): Promise<AuthenticatedDevice> {
    const cert = await this.prisma.deviceCertificate.findUnique({
      where: { fingerprint },
      select: { id: true, serial: true, notAfter: true, revokedAt: true, device: { select: { id: true, name: true, revokedAt: true } } },
    });
    // Signed by our CA but not in the table: the CA's key signed something Ibex did not record.
    if (!cert) throw new Unauthenticated(`the device certificate (SHA-256 ${fingerprint.slice(0, 16)}…) is not one this controller issued; ${REENROLL} --force`);
    if (cert.device.revokedAt) throw new Unauthenticated(`device ${cert.device.name} was revoked; ${REENROLL} --force`);
    if (cert.revokedAt) throw new Unauthenticated(`the device certificate (serial ${cert.serial}) was revoked at ${cert.revokedAt.toISOString()}; ${REENROLL} --force`);
    if (cert.notAfter <= this.clock.now()) throw new Unauthenticated(`the device certificate (serial ${cert.serial}) expired at ${cert.notAfter.toISOString()}; ${REENROLL} --force`);
    return { id: cert.device.id, name: cert.device.name, certificateId: cert.id };
  }
}
