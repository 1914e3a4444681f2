import { isIPv4, isIPv6 } from 'node:net';

/**
 * Small, dependency-free IP helpers shared by the network schema (refinements) and the agent's
 * renderer (netmasks, on-link checks). Addresses are compared as bigints.
 */
export type IpFamily = 4 | 6;

export interface Cidr {
  family: IpFamily;
  address: string;
  prefix: number;
}

export function ipFamily(s: string): IpFamily | undefined {
  // node:net accepts zone ids (fe80::1%eth0); an interfaces file does not.
  if (s.includes('%')) return undefined;
  if (isIPv4(s)) return 4;
  if (isIPv6(s)) return 6;
  return undefined;
}

export function ipToBigInt(s: string): bigint {
  if (ipFamily(s) === 4) return s.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  let text = s;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = ipToBigInt(v4[1]!);
    text = text.slice(0, -v4[1]!.length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

const bits = (f: IpFamily) => (f === 4 ? 32 : 128);

/** `a.b.c.d/n` or `x::y/n`: undefined when the text is not an address with a valid prefix. */
export function parseCidr(s: string): Cidr | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const family = ipFamily(m[1]!);
  const prefix = Number(m[2]);
  if (!family || prefix > bits(family) || String(prefix) !== m[2]) return undefined;
  return { family, address: m[1]!, prefix };
}

function maskOf(f: IpFamily, prefix: number): bigint {
  const all = (1n << BigInt(bits(f))) - 1n;
  return (all << BigInt(bits(f) - prefix)) & all;
}

/** Whether `ip` lies in the network of `cidr`. */
export function inNetwork(ip: string, cidr: Cidr): boolean {
  if (ipFamily(ip) !== cidr.family) return false;
  const m = maskOf(cidr.family, cidr.prefix);
  return (ipToBigInt(ip) & m) === (ipToBigInt(cidr.address) & m);
}

/** Whether the address has no host bits set (a route destination such as 192.168.2.0/24). */
export function isNetworkAddress(c: Cidr): boolean {
  return (ipToBigInt(c.address) & ~maskOf(c.family, c.prefix) & ((1n << BigInt(bits(c.family))) - 1n)) === 0n;
}

/** 24 -> 255.255.255.0 (BusyBox ifup builds `ip addr add ADDR/BITS` from a dotted netmask). */
export function prefixToNetmask(prefix: number): string {
  const m = maskOf(4, prefix);
  return [24n, 16n, 8n, 0n].map((s) => String((m >> s) & 255n)).join('.');
}

/** 255.255.255.0 -> 24; undefined for a mask that is not contiguous. */
export function netmaskToPrefix(mask: string): number | undefined {
  if (ipFamily(mask) !== 4) return /^\d{1,3}$/.test(mask) && Number(mask) <= 32 ? Number(mask) : undefined;
  const n = ipToBigInt(mask);
  for (let p = 0; p <= 32; p++) if (maskOf(4, p) === n) return p;
  return undefined;
}

export const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
