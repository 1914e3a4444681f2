import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runAgent } from '../testing/agent-process.js';
import { NetnsDevice, sh } from '../testing/netns-device.js';
import { StandinOpenwrt } from '../testing/openwrt-standin.js';

/**
 * The openwrt section against a real podman container, as root: the stand-in OpenWrt filesystem
 * (BusyBox, the uci and init-script stand-ins) imported offline with `podman import` and run with
 * `--network none` (the agent gives it its links). The agent finds it with `podman inspect` and
 * runs uci and the init scripts with `podman exec -i`, as it would a real OpenWrt image.
 *
 * Podman here: runc (Debian's crun refuses this machine's hybrid cgroup layout), and explicit
 * ulimits (podman asks for more than the hard limits root may raise without CAP_SYS_RESOURCE).
 * The agent runs in the device namespace through `nsenter --net` rather than `ip netns exec`,
 * which mounts a fresh /sys without the cgroup tree `podman exec` needs.
 */

const podman = (args: string[], check = true) => sh(['podman', ...args], check);

describe('openwrt capability with a real podman container', () => {
  it('wires and configures it, follows a restart (new pid), and cleans the host side when it stops', async (t) => {
    const dev = NetnsDevice.create();
    const rootfs = StandinOpenwrt.create();
    const id = randomBytes(3).toString('hex');
    const image = `localhost/ibex-owrt-test-${id}:latest`;
    const name = `ibex-owrt-${id}`;
    t.after(async () => {
      podman(['rm', '-f', '-t', '0', name], false);
      podman(['rmi', '-f', image], false);
      await rootfs.destroy();
      dev.destroy();
    });
    dev.addLink('lan0', 'p0');
    sh([...dev.prefix, 'ip', 'link', 'set', 'lan0', 'up']);
    podman(['import', rootfs.tarball(), image]);
    podman(['run', '-d', '--name', name, '--network', 'none', '--runtime', 'runc', '--cap-add', 'NET_ADMIN', '--cap-add', 'NET_RAW', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', image, '/bin/sleep', '2147483647']);
    const pid = () => Number(podman(['inspect', '--type', 'container', '--format', '{{.State.Pid}}', name]).stdout.trim());
    const inPodman = (argv: string[]) => podman(['exec', '-i', name, ...argv], false);

    const prefix = ['nsenter', `--net=/run/netns/${dev.ns}`, '--'];
    const spec = {
      container: { runtime: 'podman', name },
      links: [{ type: 'macvlan', name: 'eth0', parent: { name: 'lan0' }, shim: { name: 'pmshim', addresses: ['192.168.80.2/24'] } }],
      config: { lan: { devices: ['eth0'], address: '192.168.80.1/24' } },
    };
    const file = join(dev.root, 'spec.json');
    writeFileSync(file, JSON.stringify({ openwrt: spec }));
    const agent = (verb: string) => runAgent([verb, '--spec', file, '--root', dev.root], {}, 120_000, prefix);
    const ping = () => sh([...dev.prefix, 'busybox', 'ping', '-c', '1', '-W', '3', '192.168.80.1'], false);

    const plan = await agent('plan');
    assert.match(plan.stdout, new RegExp(`\\$ podman exec -i ${name} /sbin/uci batch`));
    const first = await agent('apply');
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.match(inPodman(['/sbin/uci', 'export', 'network']).stdout, /option ipaddr '192\.168\.80\.1'/);
    assert.match(inPodman(['/bin/cat', '/var/log/standin.log']).stdout, /network reload\ndnsmasq reload\nfirewall reload/);
    assert.equal(ping().code, 0, 'the host reaches OpenWrt in podman through the shim');

    // podman restart: a new pid and namespace; the agent wires it again.
    const before = pid();
    podman(['restart', '-t', '0', name]);
    assert.notEqual(pid(), before);
    assert.notEqual(ping().code, 0, 'the old links went with the old namespace');
    const again = await agent('apply');
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /in sync/);
    assert.equal(ping().code, 0, 'wired again after the restart');

    // Stopped: the host side goes, and the section says why.
    podman(['stop', '-t', '0', name]);
    const gone = await agent('apply');
    assert.equal(gone.code, 1);
    assert.match(gone.stdout, new RegExp(`podman container ${name} is not running: its host side was cleaned up`));
    assert.ok(!sh([...dev.prefix, 'ip', '-j', 'link', 'show']).stdout.includes('"pmshim"'), 'the shim is gone');
  });
});
