import { z } from 'zod';
import { timestamp } from '../http/schemas.js';

export const credentialView = z
  .object({
    id: z.uuid(),
    createdAt: timestamp,
    revokedAt: timestamp.nullable(),
  })
  .meta({ id: 'DeviceCredential' });
export type CredentialView = z.output<typeof credentialView>;

export const certificateView = z
  .object({
    id: z.uuid(),
    serial: z.string().describe('Hex serial number, as `openssl x509 -serial` prints it.'),
    fingerprint: z.string().describe('SHA-256 of the DER certificate, lowercase hex.'),
    notBefore: timestamp,
    notAfter: timestamp,
    createdAt: timestamp,
    revokedAt: timestamp.nullable(),
  })
  .meta({ id: 'DeviceCertificate' });
export type CertificateView = z.output<typeof certificateView>;

export const deviceIdentityView = z
  .object({
    credentials: z.array(credentialView).describe('Bearer credentials (only their hashes are stored), newest first.'),
    certificates: z.array(certificateView).describe('Client certificates the device CA issued (enrollment and renewals), newest first.'),
  })
  .meta({ id: 'DeviceIdentity' });
export type DeviceIdentityView = z.output<typeof deviceIdentityView>;
