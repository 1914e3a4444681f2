import { randomBytes } from 'node:crypto';
import { z } from 'zod';

// Device names are DNS-label-like so they work as hostnames, in URLs and in label selectors.
const NAME_RE = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;
export const DEVICE_NAME_RULE = 'must be 1-63 lowercase letters, digits, "-", "_" or ".", starting and ending with a letter or digit';

export const deviceNameSchema = z.string().regex(NAME_RE, DEVICE_NAME_RULE);

/**
 * A valid device name made from a hostname (lowercased, other characters turned into "-"),
 * or undefined when nothing usable is left. `room` keeps space for a `-xxxx` suffix.
 */
export function nameFromHostname(hostname: string, room = 0): string | undefined {
  const cleaned = hostname
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .slice(0, 63 - room)
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return cleaned && NAME_RE.test(cleaned) ? cleaned : undefined;
}

/** `device-<8 hex>`: the name of a device that reported neither a name nor a hostname. */
export function generatedName(): string {
  return `device-${randomBytes(4).toString('hex')}`;
}

/** `<base>-<4 hex>`: a derived name made unique after a clash. */
export function withSuffix(base: string): string {
  return `${base.slice(0, 58).replace(/[^a-z0-9]+$/, '')}-${randomBytes(2).toString('hex')}`;
}
