import { z } from 'zod';

/** Timestamps leave the API as ISO 8601 strings (UTC). */
export const timestamp = z.string().meta({ format: 'date-time', example: '2026-01-31T12:00:00.000Z' });

export function iso(d: Date): string;
export function iso(d: Date | null): string | null;
export function iso(d: Date | null): string | null {
  return d ? d.toISOString() : null;
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string): boolean => UUID_RE.test(s);

/** Time filters in queries: an ISO timestamp. */
export const timeQuery = z.iso
  .datetime({ offset: true, message: 'must be an ISO 8601 timestamp such as 2026-01-31T12:00:00Z' })
  .transform((s) => new Date(s));
