import { join } from 'node:path';
import { z } from 'zod';
import { readJsonSync, writeJsonAtomicSync } from '../../journal/atomic-file.js';

/**
 * What the agent gave the container and made on the host, so it can tell its own things from
 * OpenWrt's (br-lan, phy0-ap0) and from the operator's: links it put in the container (and the
 * namespace they went into: a restarted container has a new one, and virtual links die with
 * the old), phys it moved, host shims and veth ends it created, the netns handle. Every
 * executor updates it right after acting; the undo of a step updates it back. Kept under
 * --root (`/var/lib/ibex-agent/openwrt`), like the generations state, so a revert at start
 * finds it from --root alone.
 */
export const openwrtStateDir = (root: string) => join(root, 'var/lib/ibex-agent/openwrt');
export const ledgerPath = (root: string) => join(openwrtStateDir(root), 'ledger.json');

/** A container instance (RunningContainer.nsId): its namespace, and for a process its pid and start time. */
const nsIdSchema = z.string().regex(/^net:\[\d+\](@\d+\.\d+)?$/);
const ifname = z.string().regex(/^[A-Za-z0-9_.@-]{1,15}$/);

export const ledgerLinkSchema = z
  .object({
    /** Its name in the container. */
    name: ifname,
    type: z.enum(['port', 'macvlan', 'ipvlan', 'veth']),
    nsId: nsIdSchema,
    /** port: its name on the host before it was moved (it gets it back when returned). */
    hostName: ifname.optional(),
    mac: z.string().optional(),
    /** macvlan/ipvlan: the host parent and the mode (to make it again if a removal is undone); veth: hostName is the host end. */
    parent: ifname.optional(),
    mode: z.string().optional(),
  })
  .strict();
export type LedgerLink = z.infer<typeof ledgerLinkSchema>;

export const ledgerPhySchema = z
  .object({ radio: z.string(), phy: z.string(), mac: z.string().optional(), matchKey: z.string(), nsId: nsIdSchema })
  .strict();
export type LedgerPhy = z.infer<typeof ledgerPhySchema>;

export const ledgerSchema = z
  .object({
    links: z.array(ledgerLinkSchema).default([]),
    phys: z.array(ledgerPhySchema).default([]),
    /** Host interfaces the agent created: shims and the host ends of veth pairs. */
    shims: z.array(ifname).default([]),
    /** Host path of the netns handle it made, and what it points to. */
    handle: z.object({ path: z.string(), target: z.string() }).strict().optional(),
  })
  .strict();
export type Ledger = z.infer<typeof ledgerSchema>;

export const emptyLedger = (): Ledger => ({ links: [], phys: [], shims: [] });

export function readLedger(root: string): Ledger {
  const raw = readJsonSync(ledgerPath(root));
  if (raw === undefined) return emptyLedger();
  const r = ledgerSchema.safeParse(raw);
  if (!r.success) throw new Error(`${ledgerPath(root)} is damaged (${r.error.issues[0]?.message}); move it away to let the agent start from what it finds`);
  return r.data;
}

/** Read, change, write back (atomically): one small file, changed by one apply at a time. */
export function updateLedger(root: string, change: (l: Ledger) => void): Ledger {
  const l = readLedger(root);
  change(l);
  writeJsonAtomicSync(ledgerPath(root), l);
  return l;
}
