import { randomInt } from 'node:crypto';

/**
 * Addresses for a test veth between the host and a namespace: a /30 at the start of a random
 * IPv4 link-local /29 (169.254.0.0/16 exists only on its link, so test traffic cannot be routed
 * anywhere else). `otherPeerIp` is in the /29's second /30: moving the peer there cuts it off.
 */
export interface LinkLocalBlock {
  hostIp: string;
  peerIp: string;
  otherPeerIp: string;
  /** Prefix length of hostIp and peerIp. */
  prefixLength: 30;
}

/** Whether any host address (`ip -j -4 addr show` output) lies in 169.254.b.c/29. */
export function linkLocalBlockTaken(ipJson: string, b: number, c: number): boolean {
  const addrs = (JSON.parse(ipJson) as { addr_info?: { local: string }[] }[]).flatMap((l) => (l.addr_info ?? []).map((a) => a.local));
  return addrs.some((a) => {
    const [p, q, r, d] = a.split('.').map(Number);
    return p === 169 && q === 254 && r === b && d! >= c && d! < c + 8;
  });
}

/**
 * One random /29 in 169.254.100.0 - 169.254.199.255 (never 169.254.169.x, where cloud metadata
 * lives), or undefined when the host already has an address in it: `ip addr add` accepts an
 * address another link has, so the caller passes the host's addresses (`ip -j -4 addr show`),
 * then tries the next block when this returns undefined or its `ip addr add` fails.
 */
export function pickLinkLocalBlock(ipJson: string, random: (min: number, max: number) => number = randomInt): LinkLocalBlock | undefined {
  let b = random(100, 200);
  if (b === 169) b = 170;
  const c = random(0, 32) * 8;
  if (linkLocalBlockTaken(ipJson, b, c)) return undefined;
  return { hostIp: `169.254.${b}.${c + 1}`, peerIp: `169.254.${b}.${c + 2}`, otherPeerIp: `169.254.${b}.${c + 6}`, prefixLength: 30 };
}
