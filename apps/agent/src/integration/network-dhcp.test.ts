import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runAgent } from '../testing/agent-process.js';
import { NetnsDevice, sh } from '../testing/netns-device.js';

/**
 * DHCP with the real tools: ifupdown-ng's dhcp executor runs `udhcpc -b`, which returns (and
 * ifup succeeds) when its first discovers get no answer. The apply must wait for the lease
 * itself and revert when none arrives. BusyBox udhcpd serves from the peer namespace. The DHCP
 * interface names are unique per test (udhcpc's pid file is /run/udhcpc.NAME.pid on the host).
 */

function device(t: { after: (fn: () => void) => void }): NetnsDevice {
  const dev = NetnsDevice.create();
  t.after(() => dev.destroy());
  return dev;
}

const agent = (dev: NetnsDevice, args: string[]) => runAgent([...args, '--root', dev.root], {}, 120_000, dev.prefix);

function writeSpec(dev: NetnsDevice, name: string, spec: unknown): string {
  const f = join(dev.root, `${name}.json`);
  writeFileSync(f, JSON.stringify(spec));
  return f;
}

const nsPids = (ns: string) => sh(['ip', 'netns', 'pids', ns], false).stdout.split('\n').filter(Boolean);

describe('network capability: DHCP leases', () => {
  it('waits after ifup for a lease that arrives only after udhcpc went to the background, then is in sync', async (t) => {
    const dev = device(t);
    const wan = dev.uniqueName('dh');
    dev.addLink(wan, 'p0');
    const spec = writeSpec(dev, 'dhcp', { network: { interfaces: [{ name: wan, method: 'dhcp', dhcpTimeoutSec: 60 }] } });
    const plan = await agent(dev, ['plan', '--spec', spec]);
    assert.match(plan.stdout, new RegExp(`bring up ${wan} \\(its configuration changes\\); wait up to 60 s for a DHCP lease on ${wan}`));

    // No server yet: udhcpc's three discovers (3 s apart) go unanswered, it goes to the
    // background and ifup returns; the server starts afterwards, so the lease comes from
    // udhcpc's next attempt (about 20 s later), while the agent waits for it.
    const applying = agent(dev, ['apply', '--spec', spec]);
    await new Promise((r) => setTimeout(r, 12_000));
    dev.startDhcpServer('p0', '10.66.0.1', '10.66.0.100', '10.66.0.120');
    const r = await applying;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /network: in sync \(\d+ step\(s\) applied\)/);
    const got = dev.ipv4Of(wan);
    assert.equal(got.length, 1, JSON.stringify(dev.link(wan)));
    assert.match(got[0]!, /^10\.66\.0\.1[0-2]\d\/24$/);
  });

  it('reverts to the previous configuration when no DHCP lease arrives, naming the interface', async (t) => {
    const dev = device(t);
    const wan = dev.uniqueName('dh');
    dev.addLink(wan, 'p0');
    const first = writeSpec(dev, 'static', { network: { interfaces: [{ name: wan, method: 'static', addresses: ['10.67.0.2/24'] }] } });
    const ok = await agent(dev, ['apply', '--spec', first]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const net = join(dev.root, 'etc/network');
    const before = { main: readFileSync(join(net, 'interfaces'), 'utf8'), iface: readFileSync(join(net, `interfaces.d/${wan}`), 'utf8') };

    // Nobody serves DHCP on p0.
    const dhcp = writeSpec(dev, 'dhcp', { network: { interfaces: [{ name: wan, method: 'dhcp' }], dhcpTimeoutSec: 3 } });
    const r = await agent(dev, ['apply', '--spec', dhcp]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`network: reverted: step \\d+ of \\d+ \\(bring up ${wan} .*\\) failed: ${wan}: no DHCP lease arrived within 3 s after ifup \\(no IPv4 address on it\\); the previous state was restored`));
    assert.equal(readFileSync(join(net, 'interfaces'), 'utf8'), before.main);
    assert.equal(readFileSync(join(net, `interfaces.d/${wan}`), 'utf8'), before.iface);
    assert.deepEqual(dev.ipv4Of(wan), ['10.67.0.2/24']);
    assert.ok(dev.link(wan)?.flags.includes('UP'));
    // The revert's ifdown stopped the DHCP client the apply started.
    assert.deepEqual(nsPids(dev.ns), []);
    assert.ok(!existsSync(`/run/udhcpc.${wan}.pid`));
    assert.ok(!existsSync(join(dev.dataDir, 'intents/network.json')));
  });

  it('tests that need the same fixed DHCP interface name take turns (host-wide lock, a dead holder is taken over)', async (t) => {
    const a = device(t);
    const b = device(t);
    const name = a.uniqueName('lk');
    const lock = `/run/lock/ibex-test-iface-${name}`;
    t.after(() => rmSync(lock, { force: true }));
    await a.holdName(name);
    let bHolds = false;
    const waiting = b.holdName(name, 20_000).then(() => (bHolds = true));
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(bHolds, false, 'b must wait while a holds the name');
    a.destroy();
    await waiting;
    assert.equal(readFileSync(lock, 'utf8').trim(), String(process.pid));
    b.destroy();
    assert.ok(!existsSync(lock), 'destroy releases the lock');
    // A holder that died without releasing it: its lock is taken over at once.
    const dead = spawnSync('true').pid!;
    writeFileSync(lock, `${dead}\n`);
    const c = device(t);
    await c.holdName(name, 1_000);
    c.destroy();
    assert.ok(!existsSync(lock));
  });
});
