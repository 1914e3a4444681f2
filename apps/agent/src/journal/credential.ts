import { z } from 'zod';
import { parseOrThrow } from '@ibex/spec';
import { readJsonSync, writeJsonAtomicSync } from './atomic-file.js';

export const credentialSchema = z.object({
  deviceId: z.string().min(1),
  deviceName: z.string(),
  credential: z.string().min(1),
  controller: z.string().min(1),
  caFile: z.string().optional(),
  labels: z.record(z.string(), z.string()).default({}),
  enrolledAtMs: z.number().int(),
});
export type Credential = z.infer<typeof credentialSchema>;

export function readCredential(path: string): Credential | undefined {
  const raw = readJsonSync(path);
  if (raw === undefined) return undefined;
  return parseOrThrow(credentialSchema, raw, `credential file ${path}`);
}

export function writeCredential(path: string, cred: Credential): void {
  writeJsonAtomicSync(path, cred, 0o600);
}
