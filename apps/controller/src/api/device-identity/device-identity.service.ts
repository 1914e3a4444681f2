import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '../../audit/audit.service.js';
import { Clock } from '../../common/clock.js';
import { NotFound } from '../../common/errors.js';
import { AGENT_DELIVERY, type AgentDelivery, type DisconnectScope } from '../../delivery/agent-delivery.port.js';
import type { DeviceCertificate, DeviceCredential } from '../../generated/prisma/client.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { normalSerial } from '../../security/device-ca.service.js';
import { DevicesService } from '../devices/devices.service.js';
import type { Caller } from '../http/request-context.js';
import { isUuid } from '../http/schemas.js';
import type { CertificateView, CredentialView, DeviceIdentityView } from './device-identity.dto.js';

/**
 * A device's credentials and certificates, and revoking one of them: the stream that was let in
 * with it ends at once on whichever replica holds it (a stream let in with another one stays).
 */
@Injectable()
export class DeviceIdentityService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly devices: DevicesService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    @Inject(AGENT_DELIVERY) private readonly delivery: AgentDelivery,
  ) {}

  async get(ref: string): Promise<DeviceIdentityView> {
    const d = await this.devices.find(ref);
    const [credentials, certificates] = await Promise.all([
      this.prisma.deviceCredential.findMany({ where: { deviceId: d.id }, orderBy: { createdAt: 'desc' } }),
      this.prisma.deviceCertificate.findMany({ where: { deviceId: d.id }, orderBy: { createdAt: 'desc' } }),
    ]);
    return { credentials: credentials.map(credentialView), certificates: certificates.map(certificateView) };
  }

  async revokeCredential(caller: Caller, ref: string, credentialId: string): Promise<CredentialView> {
    const { device, row } = await this.prisma.$transaction(async (tx) => {
      const device = await this.devices.findForUpdate(tx, ref);
      const before = isUuid(credentialId) ? await tx.deviceCredential.findFirst({ where: { id: credentialId.toLowerCase(), deviceId: device.id } }) : null;
      if (!before) throw new NotFound(`device "${device.name}" has no credential ${credentialId}; list them with GET /api/v1/devices/${device.name}/identity`);
      if (before.revokedAt) return { device, row: before };
      const row = await tx.deviceCredential.update({ where: { id: before.id }, data: { revokedAt: this.clock.now() } });
      await this.audit.record(
        { actor: caller.actor, action: 'device.credential.revoke', target: { type: 'device', id: device.id }, data: { name: device.name, credentialId: row.id }, requestId: caller.requestId },
        tx,
      );
      return { device, row };
    });
    await this.disconnect(device, `device credential revoked by ${caller.actor.name}`, { credentialId: row.id });
    return credentialView(row);
  }

  /** `certificate` is the row id or the serial number (any case, colons allowed). */
  async revokeCertificate(caller: Caller, ref: string, certificate: string): Promise<CertificateView> {
    const { device, row } = await this.prisma.$transaction(async (tx) => {
      const device = await this.devices.findForUpdate(tx, ref);
      const before = await tx.deviceCertificate.findFirst({
        where: { deviceId: device.id, ...(isUuid(certificate) ? { id: certificate.toLowerCase() } : { serial: normalSerial(certificate) }) },
      });
      if (!before) throw new NotFound(`device "${device.name}" has no certificate ${certificate} (give its id or serial); list them with GET /api/v1/devices/${device.name}/identity`);
      if (before.revokedAt) return { device, row: before };
      const row = await tx.deviceCertificate.update({ where: { id: before.id }, data: { revokedAt: this.clock.now() } });
      await this.audit.record(
        { actor: caller.actor, action: 'device.certificate.revoke', target: { type: 'device', id: device.id }, data: { name: device.name, certificateId: row.id, serial: row.serial }, requestId: caller.requestId },
        tx,
      );
      return { device, row };
    });
    await this.disconnect(device, `device certificate ${row.serial} revoked by ${caller.actor.name}`, { certificateId: row.id });
    return certificateView(row);
  }

  // Never throws (AgentDelivery): if Redis is down, every replica's revocation sweep
  // (RevocationSweep) still ends the stream within a second.
  private disconnect(d: { id: string }, reason: string, scope: DisconnectScope): Promise<void> {
    return this.delivery.disconnect(d.id, reason, scope);
  }
}

function credentialView(c: DeviceCredential): CredentialView {
  return { id: c.id, createdAt: c.createdAt.toISOString(), revokedAt: c.revokedAt?.toISOString() ?? null };
}

function certificateView(c: DeviceCertificate): CertificateView {
  return {
    id: c.id,
    serial: c.serial,
    fingerprint: c.fingerprint,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    createdAt: c.createdAt.toISOString(),
    revokedAt: c.revokedAt?.toISOString() ?? null,
  };
}
