import { Injectable } from '@nestjs/common';
import type { Metadata } from '@grpc/grpc-js';
import { Unauthenticated } from '../../common/errors.js';
import { hashSecret } from '../../common/secrets.js';
import { PrismaService } from '../../prisma/prisma.service.js';

export const REENROLL = 're-enroll with `ibex-agent enroll`';
export const CREDENTIAL_REFUSED = `device credential is not recognised or was revoked; ${REENROLL}`;

export interface AuthenticatedDevice {
  id: string;
  name: string;
}

/** Who is on the other end of a Connect call: the `authorization: Bearer ibxd_...` metadata. */
@Injectable()
export class DeviceAuth {
  constructor(private readonly prisma: PrismaService) {}

  async authenticate(metadata: Metadata): Promise<AuthenticatedDevice> {
    const [header] = metadata.get('authorization');
    return this.authenticateHeader(typeof header === 'string' ? header : undefined);
  }

  /** The same check for an HTTP `Authorization` header (agents downloading artifacts). */
  async authenticateHeader(header: string | undefined): Promise<AuthenticatedDevice> {
    if (!header) {
      throw new Unauthenticated(`the authorization metadata is missing: send \`authorization: Bearer <device credential>\`, or ${REENROLL}`);
    }
    const m = /^Bearer\s+(ibxd_\S{1,200})$/i.exec(header.trim());
    if (!m) throw new Unauthenticated(`the authorization metadata is not \`Bearer ibxd_...\`; ${REENROLL}`);
    const credential = await this.prisma.deviceCredential.findUnique({
      where: { hash: hashSecret(m[1]!) },
      select: { revokedAt: true, device: { select: { id: true, name: true, revokedAt: true } } },
    });
    if (!credential || credential.revokedAt || credential.device.revokedAt) throw new Unauthenticated(CREDENTIAL_REFUSED);
    return { id: credential.device.id, name: credential.device.name };
  }
}
