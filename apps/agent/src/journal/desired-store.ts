import { z } from 'zod';
import { parseOrThrow } from '@ibex/spec';
import { readJsonSync, writeJsonAtomicSync } from './atomic-file.js';

const storedDesiredSchema = z.object({
  revision: z.number().int().min(0),
  /** The spec exactly as received: validated section by section when reconciling. */
  specJson: z.string(),
  receivedAtMs: z.number().int(),
});
export type StoredDesired = z.infer<typeof storedDesiredSchema>;

export function readDesired(path: string): StoredDesired | undefined {
  const raw = readJsonSync(path);
  return raw === undefined ? undefined : parseOrThrow(storedDesiredSchema, raw, `desired state file ${path}`);
}

export function writeDesired(path: string, d: StoredDesired): void {
  writeJsonAtomicSync(path, d);
}
