import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { parseOrThrow } from '@ibex/spec';
import { readJsonSync, writeJsonAtomicSync } from '../journal/atomic-file.js';

/** Key and certificate in one file, replaced atomically: a crash never pairs a key with another's certificate. */
const certificateFileSchema = z.object({
  keyPem: z.string().min(1),
  certificatePem: z.string().min(1),
});

export interface DeviceCertificate {
  keyPem: string;
  certificatePem: string;
  serial: string;
  notBeforeMs: number;
  notAfterMs: number;
}

export function readDeviceCertificate(path: string): DeviceCertificate | undefined {
  const raw = readJsonSync(path);
  if (raw === undefined) return undefined;
  const f = parseOrThrow(certificateFileSchema, raw, `certificate file ${path}`);
  return withDates(f.keyPem, f.certificatePem);
}

export function writeDeviceCertificate(path: string, keyPem: string, certificatePem: string): DeviceCertificate {
  const cert = withDates(keyPem, certificatePem);
  writeJsonAtomicSync(path, { keyPem, certificatePem }, 0o600);
  return cert;
}

function withDates(keyPem: string, certificatePem: string): DeviceCertificate {
  const x = new X509Certificate(certificatePem);
  return { keyPem, certificatePem, serial: x.serialNumber, notBeforeMs: Date.parse(x.validFrom), notAfterMs: Date.parse(x.validTo) };
}

/** Renew once two thirds of the lifetime have passed (a third is left to retry in). */
export function renewalDueAtMs(c: DeviceCertificate): number {
  return c.notBeforeMs + Math.floor(((c.notAfterMs - c.notBeforeMs) * 2) / 3);
}
