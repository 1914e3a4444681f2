import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Random base62 text (unbiased: rejection sampling). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < 248 && out.length < length) out += ALPHABET[b % 62];
    }
  }
  return out;
}

/** Kinds of secret, each with its own prefix so a leaked one is recognisable. */
export const SECRET_PREFIX = {
  apiToken: 'ibx_',
  enrollmentToken: 'ibxe_',
  deviceCredential: 'ibxd_',
} as const;

export function newSecret(kind: keyof typeof SECRET_PREFIX): string {
  return `${SECRET_PREFIX[kind]}${randomBase62(40)}`;
}

/** Secrets are high-entropy random strings, so a plain SHA-256 is the right hash at rest. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** The part of a secret shown in listings: prefix plus 6 characters. */
export function displayPrefix(secret: string): string {
  const i = secret.indexOf('_') + 1;
  return secret.slice(0, i + 6);
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
