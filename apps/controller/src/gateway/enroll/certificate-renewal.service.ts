import { Injectable } from '@nestjs/common';
import { AuditService } from '../../audit/audit.service.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import { DeviceCa } from '../../security/device-ca.service.js';
import type { AuthenticatedDevice } from '../connect/device-auth.service.js';

/**
 * RenewCertificate (protocol.md "Device certificates"): a device that is still let in signs a
 * CSR for a new key pair and gets a new certificate, without re-enrolling. The old certificate
 * stays valid until it expires, so an agent that crashed before storing the new one can still
 * connect and renew again.
 */
@Injectable()
export class CertificateRenewal {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly ca: DeviceCa,
  ) {}

  async renew(device: AuthenticatedDevice, csrPem: string): Promise<{ certificatePem: string }> {
    return this.prisma.$transaction(async (tx) => {
      const issued = await this.ca.issue(tx, device, csrPem, 'csr_pem');
      await this.audit.record(
        {
          actor: { type: 'device', id: device.id, name: device.name },
          action: 'device.certificate.renew',
          target: { type: 'device', id: device.id },
          data: { serial: issued.serial, notAfter: issued.notAfter.toISOString(), previousCertificateId: device.certificateId ?? null },
        },
        tx,
      );
      return { certificatePem: issued.certificatePem };
    });
  }
}
