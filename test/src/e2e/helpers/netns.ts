import { randomBytes, randomInt } from 'node:crypto';
import { exec, execOk } from './exec.js';

/**
 * A network namespace acting as a device, joined to the host by a veth pair. Addresses are
 * IPv4 link-local (169.254.0.0/16) /30s: they exist only on this veth link, so test traffic
 * can never be routed anywhere else.
 */
export interface TestNetns {
  name: string;
  hostIf: string;
  nsIf: string;
  hostIp: string;
  nsIp: string;
  /** argv prefix that runs a program inside the namespace */
  prefix(): string[];
  destroy(): Promise<void>;
}

export async function createNetns(): Promise<TestNetns> {
  const id = randomBytes(3).toString('hex');
  const name = `ibx-${id}`;
  const hostIf = `vih${id}`;
  const nsIf = `vid${id}`;
  await execOk('ip', ['netns', 'add', name]);
  const destroy = async () => {
    await exec('ip', ['netns', 'del', name]);
    await exec('ip', ['link', 'del', hostIf]);
  };
  try {
    await execOk('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    await execOk('ip', ['link', 'set', nsIf, 'netns', name]);
    let hostIp = '';
    let nsIp = '';
    for (let attempt = 0; attempt < 20 && !hostIp; attempt++) {
      // 169.254.100.0 - 169.254.199.255, never 169.254.169.x (cloud metadata lives there)
      let b = randomInt(100, 200);
      if (b === 169) b = 170;
      // /29 blocks, as apps/agent/src/testing/netns-device.ts picks them; `ip addr add` accepts an
      // address another link already has, so look at the host's addresses first.
      const c = randomInt(0, 32) * 8;
      if (linkLocalBlockTaken(await execOk('ip', ['-j', '-4', 'addr', 'show']), b, c)) continue;
      const h = `169.254.${b}.${c + 1}`;
      const r = await exec('ip', ['addr', 'add', `${h}/30`, 'dev', hostIf]);
      if (r.code === 0) {
        hostIp = h;
        nsIp = `169.254.${b}.${c + 2}`;
      }
    }
    if (!hostIp) throw new Error('could not find a free link-local /30 for the test veth');
    await execOk('ip', ['link', 'set', hostIf, 'up']);
    await execOk('ip', ['netns', 'exec', name, 'ip', 'addr', 'add', `${nsIp}/30`, 'dev', nsIf]);
    await execOk('ip', ['netns', 'exec', name, 'ip', 'link', 'set', nsIf, 'up']);
    await execOk('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
    return { name, hostIf, nsIf, hostIp, nsIp, prefix: () => ['ip', 'netns', 'exec', name], destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}

/** Whether any host address (`ip -j -4 addr` output) lies in 169.254.b.c/29. */
function linkLocalBlockTaken(ipJson: string, b: number, c: number): boolean {
  const addrs = (JSON.parse(ipJson) as { addr_info?: { local: string }[] }[]).flatMap((l) => (l.addr_info ?? []).map((a) => a.local));
  return addrs.some((a) => {
    const [p, q, r, d] = a.split('.').map(Number);
    return p === 169 && q === 254 && r === b && d! >= c && d! < c + 8;
  });
}
