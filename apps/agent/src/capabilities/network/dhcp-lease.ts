import { setTimeout as sleep } from 'node:timers/promises';
import { FatalError } from '../../common/errors.js';
import type { CapabilityContext } from '../../engine/capability.js';
import type { LeaseWait } from './network-plan.js';

const POLL_MS = 250;

/** The interface's IPv4 addresses a DHCP server can have given (not link-local, not host scope). */
async function leasedAddresses(ctx: CapabilityContext, name: string): Promise<string[]> {
  const r = await ctx.sys.exec(['ip', '-j', '-4', 'addr', 'show', 'dev', name], { signal: ctx.signal, timeoutMs: 10_000 });
  if (r.code !== 0) return [];
  const links = JSON.parse(r.stdout || '[]') as Array<{ addr_info?: Array<{ family: string; local: string; scope?: string }> }>;
  return links.flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === 'inet' && a.scope !== 'link' && a.scope !== 'host').map((a) => a.local));
}

/**
 * After ifup: every dhcp interface must have an IPv4 address within its bounded wait.
 * ifupdown-ng runs `udhcpc -b`, which goes to the background (and ifup succeeds) when its
 * first discovers get no answer, so a link that is up proves nothing about the lease.
 * Throws, naming each interface without a lease, so the engine reverts the section.
 */
export async function waitForLeases(ctx: CapabilityContext, leases: readonly LeaseWait[]): Promise<void> {
  const start = Date.now();
  let pending = [...leases];
  for (;;) {
    const still: LeaseWait[] = [];
    for (const l of pending) if (!(await leasedAddresses(ctx, l.name)).length) still.push(l);
    pending = still;
    if (!pending.length) return;
    const elapsed = Date.now() - start;
    const late = pending.filter((l) => elapsed >= l.timeoutSec * 1000);
    if (late.length) {
      throw new FatalError(late.map((l) => `${l.name}: no DHCP lease arrived within ${l.timeoutSec} s after ifup (no IPv4 address on it)`).join('; '));
    }
    await sleep(POLL_MS, undefined, { signal: ctx.signal });
  }
}
