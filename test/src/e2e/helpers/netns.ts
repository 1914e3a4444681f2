import { randomBytes } from 'node:crypto';
import { pickLinkLocalBlock } from '@ibex/test-support';
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
      const block = pickLinkLocalBlock(await execOk('ip', ['-j', '-4', 'addr', 'show']));
      if (!block) continue;
      const r = await exec('ip', ['addr', 'add', `${block.hostIp}/30`, 'dev', hostIf]);
      if (r.code === 0) ({ hostIp, peerIp: nsIp } = block);
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
