import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { agentCommand, runAgent } from '../testing/agent-process.js';
import { NetnsDevice, sh } from '../testing/netns-device.js';
import { scenarioDesiredState } from '../testing/network-scenario.js';

/**
 * The network capability with the real tools, as root: every test has its own device network
 * namespace (ifupdown-ng runs inside it against a scratch root) and a peer namespace.
 */

const scenario = scenarioDesiredState;

function device(t: { after: (fn: () => void) => void }): NetnsDevice {
  const dev = NetnsDevice.create();
  t.after(() => dev.destroy());
  mkdirSync(join(dev.root, 'var/log'), { recursive: true });
  return dev;
}

async function agent(dev: NetnsDevice, args: string[]) {
  return runAgent([...args, '--root', dev.root], {}, 90_000, dev.prefix);
}

function writeSpec(dev: NetnsDevice, name: string, spec: unknown): string {
  const f = join(dev.root, `${name}.json`);
  writeFileSync(f, JSON.stringify(spec));
  return f;
}

const hasRoute = (dev: NetnsDevice, dst: string, via: string, ifname: string) => dev.routes().some((r) => r.dst === dst && r.gateway === via && r.dev === ifname);

describe('network capability with ifupdown-ng in network namespaces', () => {
  it('applies the issue scenario: renames before up, static + DHCP (udhcpd in a peer namespace), the route follows up/down, a log line on down; re-applying is a no-op', async (t) => {
    const dev = device(t);
    // The scenario's DHCP interface name is fixed; udhcpc's pid file (/run/udhcpc.eth1_dhcp.pid)
    // is the host's: concurrent runs of this test take turns.
    await dev.holdName('eth1_dhcp');
    dev.addLink('eth0', 'p0');
    dev.addLink('eth1', 'p1');
    dev.startDhcpServer('p1', '192.168.50.1', '192.168.50.100', '192.168.50.150');
    const log = join(dev.root, 'var/log/network.log');
    const spec = writeSpec(dev, 'scenario', scenario(log));

    // Dry run: the exact file diff and the commands, nothing changed.
    const plan = await agent(dev, ['plan', '--spec', spec]);
    assert.equal(plan.code, 2, `exit 2: changes\n${plan.stderr}`);
    assert.match(plan.stdout, /network: \d+ step\(s\) to run/);
    assert.match(plan.stdout, /\+iface eth0_static inet static\n\s+\+\tpre-up \[ -e \/sys\/class\/net\/eth0_static \] \|\| ip link set dev eth0 name eth0_static/);
    assert.match(plan.stdout, /\$ ifup -n -a -i \S+\/staged\/interfaces/);
    assert.match(plan.stdout, new RegExp(`\\$ ifup -i ${dev.root}/etc/network/interfaces -S ${dev.root}/run/ifstate eth0_static eth1_dhcp lo`));
    assert.ok(!existsSync(join(dev.root, 'etc/network/interfaces')), 'plan must not write anything');
    const json = JSON.parse((await agent(dev, ['plan', '--spec', spec, '--json'])).stdout) as { sections: Array<{ section: string; steps: Array<{ action: string; diff?: string; commands?: string[][] }> }> };
    const steps = json.sections.find((s) => s.section === 'network')!.steps;
    assert.ok(steps.some((s) => s.action === 'write' && s.diff?.includes('+\taddress 192.168.1.100')));
    assert.deepEqual(steps.find((s) => s.action === 'ifup')?.commands, [['ifup', '-i', `${dev.root}/etc/network/interfaces`, '-S', `${dev.root}/run/ifstate`, 'eth0_static', 'eth1_dhcp', 'lo']]);

    const apply = await agent(dev, ['apply', '--spec', spec]);
    assert.equal(apply.code, 0, apply.stdout + apply.stderr);
    assert.match(apply.stdout, /network: in sync \(\d+ step\(s\) applied\)/);

    const names = dev.addrs().map((l) => l.ifname);
    assert.ok(names.includes('eth0_static') && names.includes('eth1_dhcp') && !names.includes('eth0') && !names.includes('eth1'), names.join());
    assert.deepEqual(dev.ipv4Of('eth0_static'), ['192.168.1.100/24']);
    const dhcp = dev.ipv4Of('eth1_dhcp');
    assert.equal(dhcp.length, 1);
    assert.match(dhcp[0]!, /^192\.168\.50\.(1[0-4]\d|150)\/24$/);
    assert.ok(hasRoute(dev, '192.168.2.0/24', '192.168.1.1', 'eth0_static'), JSON.stringify(dev.routes()));
    assert.ok(hasRoute(dev, 'default', '192.168.1.1', 'eth0_static'));
    assert.match(readFileSync(join(dev.root, 'etc/network/interfaces.d/eth0_static'), 'utf8'), /dns-nameservers 8\.8\.8\.8 8\.8\.4\.4/);

    // `source` lines name device paths: in the namespace /etc/network is the scratch root's.
    assert.match(readFileSync(join(dev.root, 'etc/network/interfaces'), 'utf8'), /^source \/etc\/network\/interfaces\.d\/eth0_static$/m);
    // BusyBox ifup accepts the same files (run in the namespace, where they are /etc/network).
    const bb = sh([...dev.prefix, 'busybox', 'ifup', '-n', '-a', '-i', join(dev.root, 'etc/network/interfaces')], false);
    assert.equal(bb.code, 0, bb.stderr + bb.stdout);
    assert.match(bb.stdout + bb.stderr, /ip addr add 192\.168\.1\.100\/24 dev eth0_static/);

    // Re-applying: nothing to do, nothing run (the files are not even rewritten).
    const mtime = statSync(join(dev.root, 'etc/network/interfaces')).mtimeMs;
    const again = await agent(dev, ['apply', '--spec', spec, '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual((JSON.parse(again.stdout) as { sections: Array<{ state: string; steps: unknown[] }> }).sections.map((s) => [s.state, s.steps.length]), [['in_sync', 0]]);
    assert.equal(statSync(join(dev.root, 'etc/network/interfaces')).mtimeMs, mtime);

    // Down removes the route and logs; up adds it again.
    const down = dev.ifupdown('ifdown', ['eth0_static']);
    assert.equal(down.code, 0, down.stderr);
    assert.ok(!dev.routes().some((r) => r.dst === '192.168.2.0/24'));
    assert.match(readFileSync(log, 'utf8'), /interface eth0_static went down/);
    // The agent sees the drift.
    const drift = await agent(dev, ['plan', '--spec', spec]);
    assert.match(drift.stdout, /bring up eth0_static \(eth0_static: the link is down, address 192\.168\.1\.100\/24 is missing/);
    assert.equal(dev.ifupdown('ifup', ['eth0_static']).code, 0);
    assert.ok(hasRoute(dev, '192.168.2.0/24', '192.168.1.1', 'eth0_static'));
  });

  it('adopts a hand-written setup without losing what it does not manage', async (t) => {
    const dev = device(t);
    dev.addLink('eth0', 'p0');
    const net = join(dev.root, 'etc/network');
    mkdirSync(join(net, 'interfaces.d'), { recursive: true });
    mkdirSync(join(net, 'if-up.d'), { recursive: true });
    const handMain = `#!/bin/ash
# /etc/network/interfaces, written by hand

# Loopback interface
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 192.168.1.50
    netmask 255.255.255.0

iface wlan0 inet dhcp
    # keep me
    wpa-conf /etc/wpa_supplicant/wpa_supplicant.conf

# ifupdown-ng has no mapping stanzas: their lines join the stanza before (wlan0 here, not auto)
mapping wl*
    script /usr/local/bin/pick-wifi
    map HOME wlan0-home
source-directory /etc/network/interfaces.d
`;
    writeFileSync(join(net, 'interfaces'), handMain);
    const vpn = 'iface vpn0 inet manual\n    pre-up echo vpn\n';
    writeFileSync(join(net, 'interfaces.d/vpn0'), vpn);
    const hook = `#!/bin/sh\necho "hand hook $IFACE $MODE" >> ${dev.root}/var/log/hand.log\n`;
    writeFileSync(join(net, 'if-up.d/hand-hook'), hook, { mode: 0o755 });
    // The device booted with it.
    const boot = dev.ifupdown('ifup', ['-a']);
    assert.equal(boot.code, 0, boot.stderr);
    assert.deepEqual(dev.ipv4Of('eth0'), ['192.168.1.50/24']);

    const spec = writeSpec(dev, 'adopt', {
      network: {
        interfaces: [
          { name: 'lo', method: 'loopback' },
          { name: 'eth0_static', match: { name: 'eth0' }, method: 'static', addresses: ['192.168.1.100/24'] },
        ],
        routes: [{ interface: 'eth0_static', to: '192.168.2.0/24', via: '192.168.1.1' }],
      },
    });
    const apply = await agent(dev, ['apply', '--spec', spec]);
    assert.equal(apply.code, 0, apply.stdout + apply.stderr);

    const main = readFileSync(join(net, 'interfaces'), 'utf8');
    for (const line of handMain.split('\n')) {
      if (!line || /eth0|192\.168\.1\.50|255\.255\.255\.0|source-directory|^auto lo$|^iface lo /.test(line)) continue;
      assert.ok(main.includes(line + '\n'), `hand-written line lost: ${line}\n${main}`);
    }
    assert.ok(main.includes('source /etc/network/interfaces.d/vpn0\n'), main);
    assert.ok(!/iface eth0 |auto eth0$|192\.168\.1\.50/m.test(main), `the spec took eth0 over:\n${main}`);
    assert.equal(readFileSync(join(net, 'interfaces.d/vpn0'), 'utf8'), vpn);
    assert.equal(readFileSync(join(net, 'if-up.d/hand-hook'), 'utf8'), hook);
    assert.ok(!dev.addrs().some((l) => l.ifname === 'eth0'));
    assert.deepEqual(dev.ipv4Of('eth0_static'), ['192.168.1.100/24']);
    assert.ok(hasRoute(dev, '192.168.2.0/24', '192.168.1.1', 'eth0_static'));
    // The hand-written hook still runs for the interface the agent now manages.
    assert.match(readFileSync(join(dev.root, 'var/log/hand.log'), 'utf8'), /hand hook eth0_static start/);
    // Both tools still read the adopted file.
    assert.equal(sh([...dev.prefix, 'busybox', 'ifup', '-n', '-a', '-i', join(net, 'interfaces')], false).code, 0);
    assert.equal(sh([...dev.prefix, 'ifquery', '-i', join(net, 'interfaces'), '-S', join(dev.root, 'run/ifstate'), '-L'], false).code, 0);
    const replan = await agent(dev, ['plan', '--spec', spec]);
    assert.match(replan.stdout, /network: in sync, nothing to do/);
  });

  it('reverts to the previous files and addresses when verification fails', async (t) => {
    const dev = device(t);
    dev.addLink('eth0', 'p0');
    const good = writeSpec(dev, 'good', {
      network: {
        interfaces: [{ name: 'eth0_static', match: { name: 'eth0' }, method: 'static', addresses: ['192.168.1.100/24'] }],
        routes: [{ interface: 'eth0_static', to: '192.168.2.0/24', via: '192.168.1.1' }],
      },
    });
    assert.equal((await agent(dev, ['apply', '--spec', good])).code, 0);
    const net = join(dev.root, 'etc/network');
    const before = { main: readFileSync(join(net, 'interfaces'), 'utf8'), eth0: readFileSync(join(net, 'interfaces.d/eth0_static'), 'utf8') };

    // ifup succeeds, but an if-up.d hook takes the address away again: the live check fails.
    const bad = writeSpec(dev, 'bad', {
      network: {
        interfaces: [{ name: 'eth0_static', match: { name: 'eth0' }, method: 'static', addresses: ['192.168.1.101/24'] }],
        routes: [{ interface: 'eth0_static', to: '192.168.2.0/24', via: '192.168.1.1' }],
        hooks: [{ phase: 'up', name: 'flush', content: '#!/bin/sh\nip addr flush dev "$IFACE"\n' }],
      },
    });
    const r = await agent(dev, ['apply', '--spec', bad]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /network: reverted: verify failed: .*address 192\.168\.1\.101\/24 is missing.*the previous state was restored/);
    assert.equal(readFileSync(join(net, 'interfaces'), 'utf8'), before.main);
    assert.equal(readFileSync(join(net, 'interfaces.d/eth0_static'), 'utf8'), before.eth0);
    assert.ok(!existsSync(join(net, 'if-up.d/flush')));
    assert.deepEqual(dev.ipv4Of('eth0_static'), ['192.168.1.100/24']);
    assert.ok(hasRoute(dev, '192.168.2.0/24', '192.168.1.1', 'eth0_static'));
    assert.ok(!existsSync(join(dev.dataDir, 'intents/network.json')));
  });

  it('undoes a rename by MAC when verification fails: the link gets its old name and the old files are back', async (t) => {
    const dev = device(t);
    dev.addLink('enp9s0', 'p0', '02:1b:ee:00:00:09');
    const net = join(dev.root, 'etc/network');
    const hand = 'auto lo\niface lo inet loopback\n';
    writeFileSync(join(net, 'interfaces'), hand);
    assert.equal(dev.ifupdown('ifup', ['-a']).code, 0);
    const spec = writeSpec(dev, 'mac-bad', {
      network: {
        interfaces: [{ name: 'lan0', match: { mac: '02:1B:EE:00:00:09' }, method: 'static', addresses: ['10.68.0.3/24'] }],
        // ifup (with the rename) succeeds, then this hook takes the address away: verify fails.
        hooks: [{ phase: 'up', name: 'flush', content: '#!/bin/sh\nip addr flush dev "$IFACE"\n' }],
      },
    });
    const r = await agent(dev, ['apply', '--spec', spec]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /network: reverted: verify failed: .*address 10\.68\.0\.3\/24 is missing.*the previous state was restored/);
    // The apply did rename it (the hook ran for lan0), and the revert named it back.
    assert.ok(dev.link('enp9s0'), `enp9s0 is back: ${dev.addrs().map((l) => l.ifname).join()}`);
    assert.ok(!dev.link('lan0'));
    assert.equal(dev.link('enp9s0')!.address, '02:1b:ee:00:00:09');
    assert.equal(readFileSync(join(net, 'interfaces'), 'utf8'), hand);
    assert.ok(!existsSync(join(net, 'interfaces.d/lan0')));
    assert.ok(!existsSync(join(net, 'if-up.d/flush')));
    assert.ok(!existsSync(join(dev.dataDir, 'intents/network.json')));
    // The same spec without the hook applies, under the new name.
    const good = writeSpec(dev, 'mac-good', { network: { interfaces: [{ name: 'lan0', match: { mac: '02:1B:EE:00:00:09' }, method: 'static', addresses: ['10.68.0.3/24'] }] } });
    assert.equal((await agent(dev, ['apply', '--spec', good])).code, 0);
    assert.deepEqual(dev.ipv4Of('lan0'), ['10.68.0.3/24']);
  });

  it('applies dns-nameservers / dns-search to the root\'s resolv.conf through its if-up.d hook; a revert puts the old resolv.conf back', async (t) => {
    const dev = device(t);
    dev.addLink('eth0', 'p0');
    const hostResolv = readFileSync('/etc/resolv.conf', 'utf8');
    const resolv = join(dev.root, 'etc/resolv.conf');
    const handResolv = 'nameserver 192.0.2.53\n';
    writeFileSync(resolv, handResolv);
    const iface = { name: 'eth0', method: 'static', addresses: ['10.70.0.2/24'] };
    const dns = { servers: ['10.70.0.53', 'fd00:70::53'], search: ['example.lab', 'corp.example'] };
    assert.equal((await agent(dev, ['apply', '--spec', writeSpec(dev, 'plain', { network: { interfaces: [iface] } })])).code, 0);
    assert.equal(readFileSync(resolv, 'utf8'), handResolv);

    // DNS arrives with a change that fails verification: resolv.conf (which the hook rewrote) is put back.
    const bad = writeSpec(dev, 'dns-bad', { network: { interfaces: [{ ...iface, dns }], hooks: [{ phase: 'up', name: 'flush', content: '#!/bin/sh\nip addr flush dev "$IFACE"\n' }] } });
    const r = await agent(dev, ['apply', '--spec', bad]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /network: reverted: verify failed/);
    assert.equal(readFileSync(resolv, 'utf8'), handResolv);
    assert.ok(!existsSync(join(dev.root, 'etc/network/if-up.d/ibex-dns')));

    const good = writeSpec(dev, 'dns', { network: { interfaces: [{ ...iface, dns }] } });
    const plan = await agent(dev, ['plan', '--spec', good]);
    assert.match(plan.stdout, /write \/etc\/network\/if-up\.d\/ibex-dns \(\d+ bytes, mode 0755; creates it\)/);
    assert.ok(plan.stdout.includes(`+conf='${resolv}'`), plan.stdout);
    const ok = await agent(dev, ['apply', '--spec', good]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(
      readFileSync(resolv, 'utf8'),
      '# Written by ibex-agent (if-up.d/ibex-dns) for eth0 from its dns-nameservers / dns-search\nsearch example.lab corp.example\nnameserver 10.70.0.53\nnameserver fd00:70::53\n',
    );
    assert.equal(statSync(resolv).mode & 0o777, 0o644);
    assert.equal(readFileSync('/etc/resolv.conf', 'utf8'), hostResolv, 'the host\'s resolv.conf is never touched');
    // BusyBox runs the same hook with the same variables.
    const bb = sh([...dev.prefix, 'busybox', 'ifup', '-n', '-a', '-i', join(dev.root, 'etc/network/interfaces')], false);
    assert.equal(bb.code, 0, bb.stderr + bb.stdout);

    // Without DNS in the spec the hook goes away (resolv.conf keeps what was last written).
    assert.equal((await agent(dev, ['apply', '--spec', writeSpec(dev, 'plain2', { network: { interfaces: [iface] } })])).code, 0);
    assert.ok(!existsSync(join(dev.root, 'etc/network/if-up.d/ibex-dns')));
  });

  it('renames by MAC and configures IPv4 and IPv6 addresses, MTU and an IPv6 route', async (t) => {
    const dev = device(t);
    dev.addLink('enp9s0', 'p0', '02:1b:ee:00:00:07');
    const spec = writeSpec(dev, 'mac', {
      network: {
        interfaces: [
          {
            name: 'lan0',
            match: { mac: '02:1B:EE:00:00:07' },
            method: 'static',
            addresses: ['10.20.0.2/16', 'fd00:20::2/64', '10.21.0.2/24'],
            gateway6: 'fd00:20::1',
            mtu: 1400,
          },
        ],
        routes: [{ interface: 'lan0', to: 'fd00:99::/64', via: 'fd00:20::1' }],
      },
    });
    const r = await agent(dev, ['apply', '--spec', spec]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lan = dev.link('lan0');
    assert.ok(lan && !dev.link('enp9s0'), 'renamed by MAC');
    assert.deepEqual(dev.ipv4Of('lan0').sort(), ['10.20.0.2/16', '10.21.0.2/24']);
    assert.ok(lan.addr_info.some((a) => a.family === 'inet6' && a.local === 'fd00:20::2' && a.prefixlen === 64));
    assert.equal((JSON.parse(sh(['ip', '-n', dev.ns, '-j', 'link', 'show', 'lan0']).stdout) as Array<{ mtu: number }>)[0]!.mtu, 1400);
    const v6 = JSON.parse(sh(['ip', '-n', dev.ns, '-j', '-6', 'route', 'show']).stdout) as Array<{ dst: string; gateway?: string; dev?: string }>;
    assert.ok(v6.some((x) => x.dst === 'fd00:99::/64' && x.gateway === 'fd00:20::1' && x.dev === 'lan0'), JSON.stringify(v6));
    assert.ok(v6.some((x) => x.dst === 'default' && x.gateway === 'fd00:20::1'), JSON.stringify(v6));
    assert.match((await agent(dev, ['plan', '--spec', spec])).stdout, /network: in sync, nothing to do/);
    assert.equal(sh([...dev.prefix, 'busybox', 'ifup', '-n', '-a', '-i', join(dev.root, 'etc/network/interfaces')], false).code, 0);
  });

  it('local apply --confirm-timeout keeps the change on "yes" and reverts it without an answer', async (t) => {
    const dev = device(t);
    dev.addLink('eth0', 'p0');
    const first = writeSpec(dev, 'first', { network: { interfaces: [{ name: 'eth0', method: 'static', addresses: ['10.9.0.2/24'] }] } });
    assert.equal((await agent(dev, ['apply', '--spec', first])).code, 0);
    const second = writeSpec(dev, 'second', { network: { interfaces: [{ name: 'eth0', method: 'static', addresses: ['10.9.1.2/24'] }] } });

    // Nobody answers (stdin is closed): reverted at once.
    const silent = await agent(dev, ['apply', '--spec', second, '--confirm-timeout', '30']);
    assert.equal(silent.code, 1, silent.stdout + silent.stderr);
    assert.match(silent.stderr, /network applied; type "yes" and Enter within 30 s to keep it, or it is reverted/);
    assert.match(silent.stdout, /network: reverted: not confirmed: nobody answered "yes" within 30 s after the change; the previous state was restored/);
    assert.deepEqual(dev.ipv4Of('eth0'), ['10.9.0.2/24']);

    // "yes" keeps it.
    const yes = await runAgent(['apply', '--spec', second, '--confirm-timeout', '30', '--root', dev.root], {}, 90_000, dev.prefix, { text: 'yes\n', afterStderr: /type "yes"/ });
    assert.equal(yes.code, 0, yes.stdout + yes.stderr);
    assert.match(yes.stdout, /network: in sync \(\d+ step\(s\) applied\) \(confirmed on the terminal\)/);
    assert.deepEqual(dev.ipv4Of('eth0'), ['10.9.1.2/24']);
    assert.ok(!existsSync(join(dev.dataDir, 'intents/network.json')));
  });

  it('local apply --confirm-timeout reverts when the session hangs up (SIGHUP) before anyone answers', async (t) => {
    const dev = device(t);
    dev.addLink('eth0', 'p0');
    const first = writeSpec(dev, 'first', { network: { interfaces: [{ name: 'eth0', method: 'static', addresses: ['10.9.0.2/24'] }] } });
    assert.equal((await agent(dev, ['apply', '--spec', first])).code, 0);
    const second = writeSpec(dev, 'second', { network: { interfaces: [{ name: 'eth0', method: 'static', addresses: ['10.9.1.2/24'] }] } });
    const [cmd, pre] = agentCommand();
    // stdin stays open (a terminal nobody types into); `ip netns exec` execs the agent, so the pid is the agent's.
    const child = spawn(dev.prefix[0]!, [...dev.prefix.slice(1), cmd, ...pre, 'apply', '--spec', second, '--confirm-timeout', '300', '--root', dev.root], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IBEX_AGENT_') && !k.startsWith('NODE_TEST'))),
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), 90_000);
    t.after(() => {
      clearTimeout(guard);
      child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    let hungUp = false;
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => {
      stderr += d;
      if (!hungUp && /type "yes"/.test(stderr)) hungUp = child.kill('SIGHUP');
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
    assert.ok(hungUp, stderr);
    assert.equal(code, 1, `signal ${signal}: ${stdout}${stderr}`);
    assert.match(stdout, /network: reverted: not confirmed/);
    assert.deepEqual(dev.ipv4Of('eth0'), ['10.9.0.2/24']);
    assert.ok(!existsSync(join(dev.dataDir, 'intents/network.json')));
  });

  it('refuses, changing nothing, to replace an /etc/network/interfaces that is a symlink (a revert could not put it back)', async (t) => {
    const dev = device(t);
    dev.addLink('eth0', 'p0');
    const target = join(dev.root, 'etc/network/interfaces.real');
    writeFileSync(target, 'auto lo\niface lo inet loopback\n');
    symlinkSync('interfaces.real', join(dev.root, 'etc/network/interfaces'));
    const spec = writeSpec(dev, 'linked', { network: { interfaces: [{ name: 'eth0', method: 'static', addresses: ['10.9.0.2/24'] }] } });
    const r = await agent(dev, ['apply', '--spec', spec]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /network: failed: backing up before the change failed, nothing was changed: \/etc\/network\/interfaces is a symlink/);
    assert.equal(readlinkSync(join(dev.root, 'etc/network/interfaces')), 'interfaces.real');
    assert.equal(readFileSync(target, 'utf8'), 'auto lo\niface lo inet loopback\n');
    assert.deepEqual(dev.ipv4Of('eth0'), []);
  });

  it('refuses, changing nothing, when an interface to configure does not exist', async (t) => {
    const dev = device(t);
    const spec = writeSpec(dev, 'missing', { network: { interfaces: [{ name: 'eth0_static', match: { name: 'eth0' }, method: 'dhcp' }] } });
    const r = await agent(dev, ['apply', '--spec', spec]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /no network interface eth0 \(to be renamed eth0_static\) on this device/);
    assert.ok(!existsSync(join(dev.root, 'etc/network/interfaces')));
  });
});
