import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { silentLogger } from '../../common/log.js';
import { CapabilityRegistry } from '../../engine/capability.js';
import { Engine } from '../../engine/engine.js';
import { DataDir } from '../../journal/data-dir.js';
import { NodeSystemAdapter } from '../../system/node-system-adapter.js';
import { FakeOpenwrtHost } from '../../testing/fake-openwrt-host.js';
import { STOCK_CONFIG } from '../../testing/openwrt-standin.js';
import { openwrtCapability } from './openwrt-capability.js';
import { ledgerPath } from './ledger.js';
import { iwProblem } from './openwrt-exec.js';

/**
 * The Wi-Fi path of the openwrt capability, through the same SystemAdapter the real code uses:
 * this machine has no mac80211_hwsim, so no phy can exist and `iw phy ... set netns` cannot be
 * run for real. FakeOpenwrtHost answers the exact commands instead (and runs the real uci
 * stand-in for the container's config). No root needed.
 */

const WAN_MAC = '02:77:00:00:00:02';
const PHY_MAC = '00:c0:ca:12:34:56';

function setup(t: { after: (fn: () => void) => void }) {
  const root = mkdtempSync(join(tmpdir(), 'ibex-owrt-wifi-'));
  const fake = new FakeOpenwrtHost(STOCK_CONFIG);
  t.after(() => {
    fake.destroy();
    rmSync(root, { recursive: true, force: true });
  });
  const dataDir = new DataDir(join(root, 'var/lib/ibex-agent'));
  const engine = new Engine({ registry: new CapabilityRegistry().register(openwrtCapability), sys: fake, log: silentLogger, root, dataDir, agentVersion: 'test' });
  fake.addHostLink('wan0', WAN_MAC);
  fake.addPhy('phy0', PHY_MAC, 'wlan0');
  const spec = (match: Record<string, string> = { interface: 'wlan0' }) => ({
    openwrt: {
      container: { runtime: 'process', pid: fake.pid },
      links: [
        { type: 'port', name: 'eth1', match: { mac: WAN_MAC } },
        { type: 'wifi', match, radio: 'radio0' },
      ],
      config: {
        lan: { devices: [], address: '192.168.20.1/24' },
        wan: { device: 'eth1', proto: 'dhcp' },
        wireless: { radios: [{ radio: 'radio0', band: '2g', channel: 11, country: 'DE', networks: [{ ssid: 'Ibex', encryption: 'sae', key: 'a long passphrase' }] }] },
      },
    },
  });
  /** Applies and confirms (the engine holds changes of this section until confirmed). */
  const apply = async (s: Record<string, unknown>) => {
    const [r] = await engine.apply(s);
    if (r!.awaitingConfirmationUntilMs !== undefined) await engine.confirmations.settle([r!], { confirmed: true });
    return r!;
  };
  return { root, fake, engine, spec, apply, dataDir };
}

const iwCalls = (fake: FakeOpenwrtHost) => fake.calls.filter((c) => c.includes('iw') && c.includes('set'));

describe('openwrt Wi-Fi through the system adapter (no Wi-Fi hardware here)', () => {
  it('moves the phy found by its interface with exactly `iw phy phy0 set netns <pid>` and configures the radio by that phy and its MAC', async (t) => {
    const { fake, engine, spec, apply } = setup(t);
    const r = await apply(spec());
    assert.equal(r.state, 'applying', r.error);
    assert.deepEqual(iwCalls(fake), [['iw', 'phy', 'phy0', 'set', 'netns', '4242']]);
    assert.equal(fake.phys.get('phy0')!.where, 'inside');
    const wireless = fake.uci(['export', 'wireless']).stdout;
    assert.match(wireless, /config wifi-device 'radio0'\n\toption type 'mac80211'\n\toption phy 'phy0'\n\toption macaddr '00:c0:ca:12:34:56'\n\toption band '2g'\n\toption channel '11'\n\toption country 'DE'\n/);
    assert.match(wireless, /option encryption 'sae'\n\toption key 'a long passphrase'/);
    // The plan showed the key redacted; the device's config has it.
    assert.ok(!JSON.stringify(r.steps).includes('a long passphrase'), 'no secret in the step summaries');
    // In place now: the interface is gone from the host, the ledger knows the phy is in the container.
    const [again] = await engine.plan(spec());
    assert.equal(again!.state, 'in_sync', JSON.stringify(again!.steps));
  });

  it('re-resolves the radio at every apply: after a replug the same card is phy1, moved and written as phy1', async (t) => {
    const { fake, spec, apply } = setup(t);
    const byMac = spec({ mac: PHY_MAC });
    assert.equal((await apply(byMac)).state, 'applying');
    // Unplugged (it leaves the container with its interface) and plugged back in: a new name.
    fake.inside.splice(fake.inside.findIndex((l) => l.name === 'wlan0'), 1);
    fake.phys.delete('phy0');
    fake.addPhy('phy1', PHY_MAC, 'wlan1');
    const r = await apply(byMac);
    assert.equal(r.state, 'applying', r.error);
    assert.deepEqual(iwCalls(fake), [
      ['iw', 'phy', 'phy0', 'set', 'netns', '4242'],
      ['iw', 'phy', 'phy1', 'set', 'netns', '4242'],
    ]);
    const uci = r.steps.find((s) => s.action === 'uci-apply') as { batch: string[] } | undefined;
    assert.deepEqual(uci?.batch, ["set wireless.radio0.phy='phy1'"]);
    assert.match(fake.uci(['export', 'wireless']).stdout, /option phy 'phy1'/);
  });

  it('a driver without namespace support ("Operation not supported") is reported clearly and what was done before is undone', async (t) => {
    const { root, fake, spec, apply } = setup(t);
    const configsBefore = fake.uci(['export', 'network']).stdout;
    fake.iwFails = { code: 161, stderr: 'command failed: Operation not supported (-95)\n' };
    const r = await apply(spec());
    assert.equal(r.state, 'reverted');
    assert.match(
      r.error!,
      /moving Wi-Fi phy0 into process \(pid 4242\) \(iw phy phy0 set netns 4242\): the Wi-Fi driver does not support moving its phy to another network namespace \(iw: "command failed: Operation not supported \(-95\)"\)\. Such a driver \(no WIPHY_FLAG_NETNS_OK\) cannot be given to a container: use a card whose driver supports it, or keep Wi-Fi on the host; the previous state was restored/,
    );
    // The port moved before the phy is back on the host, by the exact commands.
    assert.ok(fake.calls.some((c) => c.join(' ') === `nsenter --net=/proc/4242/ns/net -- ip link set dev eth1 netns /proc/${process.pid}/ns/net`), 'returned from the container');
    assert.deepEqual(
      fake.host.map((l) => l.name).sort(),
      ['wan0', 'wlan0'],
      'the port has its host name again',
    );
    assert.equal(fake.phys.get('phy0')!.where, 'host');
    // The UCI change came after the phy: it never ran; no wireless package was made.
    assert.equal(fake.uci(['export', 'network']).stdout, configsBefore);
    assert.equal(fake.uci(['export', 'wireless']).code, 1);
    assert.deepEqual(JSON.parse(readFileSync(ledgerPath(root), 'utf8')), { links: [], phys: [], shims: [] });
  });

  it('uci batch prints an error but exits 0: the step fails, the staged changes are reverted, nothing is committed', async (t) => {
    const { fake, apply, dataDir } = setup(t);
    const before = ['network', 'dhcp', 'firewall'].map((n) => readFileSync(join(fake.uciDir, 'config', n), 'utf8'));
    // Someone deletes the lan section between the agent's look and its batch.
    fake.beforeBatch = () => {
      fake.uci(['delete', 'network.lan']);
      fake.beforeBatch = undefined;
    };
    const r = await apply({ openwrt: { container: { runtime: 'process', pid: fake.pid }, config: { lan: { devices: [], address: '192.168.20.1/24' } } } });
    assert.equal(r.state, 'reverted');
    assert.match(r.error!, /uci batch in process \(pid 4242\) reported: uci: Entry not found/);
    assert.ok(fake.calls.some((c) => c.slice(-2).join(' ') === 'revert network'), 'the staged changes were dropped');
    assert.ok(!fake.inputs.some((i) => /^commit /m.test(i.input)), 'no commit was sent');
    assert.ok(fake.inputs.some((i) => i.input.includes("set network.lan.ipaddr='192.168.20.1'")), 'the batch did run');
    assert.deepEqual(['network', 'dhcp', 'firewall'].map((n) => readFileSync(join(fake.uciDir, 'config', n), 'utf8')), before, 'nothing committed');
    assert.ok(!existsSync(join(fake.uciDir, 'save/network')), 'nothing left staged');
    assert.ok(!existsSync(join(dataDir.intents, 'openwrt.json')));
  });

  it('the real iw binary: its failure here (no Wi-Fi, no nl80211) becomes a message that says so', async () => {
    // iw comes from scripts/setup-system.sh (Debian package iw).
    const r = await new NodeSystemAdapter().exec(['iw', 'phy', 'phy0', 'set', 'netns', String(process.pid)]);
    assert.notEqual(r.code, 0, 'no phy0 can exist on this machine');
    const msg = iwProblem(r, 'moving Wi-Fi phy0');
    assert.ok(msg.includes((r.stderr + r.stdout).trim().split('\n').at(-1)!), msg);
    if (!existsSync('/sys/module/cfg80211')) assert.match(msg, /^moving Wi-Fi phy0: the kernel has no nl80211 \(cfg80211 is not loaded, or there is no Wi-Fi hardware\): iw says "nl80211 not found\."/);
    else assert.match(msg, /moving Wi-Fi phy0: (the phy is gone|.*failed \(iw exited)/);
  });
});
