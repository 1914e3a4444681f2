import { z } from 'zod';
import { generationsInventorySchema } from './generations-inventory.js';

// Same shape as the proto `Facts` message (ts-proto's camelCase), except that the proto's
// `generations_json` (JSON text) is `generations` (the parsed inventory) here. The controller
// validates what agents send with it before storing; bounds keep one device from flooding storage.
const text = (max: number) => z.string().max(max);

export const factsSchema = z.object({
  hostname: text(253),
  osRelease: z.object({ id: text(64), versionId: text(64), prettyName: text(256) }).optional(),
  kernel: text(256),
  arch: text(32),
  interfaces: z
    .array(
      z.object({
        name: text(64),
        mac: text(64),
        mtu: z.number().int().min(0).max(1 << 20),
        up: z.boolean(),
        addresses: z.array(text(64)).max(64),
      }),
    )
    .max(256),
  filesystems: z
    .array(
      z.object({
        device: text(512),
        mountpoint: text(1024),
        fstype: text(64),
        sizeBytes: z.number().int().min(0),
        usedBytes: z.number().int().min(0),
        readOnly: z.boolean(),
      }),
    )
    .max(256),
  agentVersion: text(64),
  uptimeSeconds: z.number().int().min(0),
  memoryTotalBytes: z.number().int().min(0),
  cpuCount: z.number().int().min(0).max(65536),
  collectedAtMs: z.number().int().min(0),
  /** The generations on the device's btrfs volume; absent when it has no generations layout (proto `generations_json`). */
  generations: generationsInventorySchema.optional(),
});
export type Facts = z.infer<typeof factsSchema>;
