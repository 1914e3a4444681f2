// End to end for the network capability: the controller as a process on the host, the built
// agent binary in a network namespace joined to the host by a veth (the device's only way to
// the controller), real Postgres, Redis and ifupdown-ng. The device is configured through the
// REST API only; what it did is checked with `ip -j` inside the namespace. Steps run in order.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { AgentProcess } from './helpers/agent-process.js';
import { ControllerProcess } from './helpers/controller-process.js';
import { execOk, waitFor } from './helpers/exec.js';
import { createNetns, type TestNetns } from './helpers/netns.js';

const DEVICE = 'e2e-net-device';

interface IpAddr {
  family: string;
  local: string;
  prefixlen: number;
}

describe('network end to end: desired network config through REST, applied by ifupdown-ng in a namespace', () => {
  let db: TestDatabase;
  let ns: TestNetns;
  let ctl: ControllerProcess;
  let agent: AgentProcess;
  let root: string;

  before(async () => {
    db = await createTestDatabase();
    ns = await createNetns();
    root = await mkdtemp(join(tmpdir(), 'ibex-e2e-net-root-'));
    // A device's root has /run (a tmpfs at boot): ifupdown-ng keeps its state and locks there.
    await mkdir(join(root, 'run'));
    ctl = new ControllerProcess({
      databaseUrl: db.url,
      env: { IBEX_HEARTBEAT_INTERVAL_MS: '1000', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_LOG_LEVEL: 'warn' },
    });
    await ctl.start();
    agent = new AgentProcess(ns.prefix(), root);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => {});
    await ctl?.stop('SIGKILL').catch(() => {});
    // Deleting the namespace removes its end of the veth and whatever ifupdown configured there.
    await ns?.destroy();
    if (ctl) await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await db?.drop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  const state = () => ctl.json(`/api/v1/devices/${DEVICE}/state`);
  const section = async (name: string) => ((await state()).sections as Array<{ section: string; state: string; revision: number; error: string | null; detail: unknown }>).find((s) => s.section === name);
  const putSpec = (spec: unknown, message: string) => ctl.json(`/api/v1/devices/${DEVICE}/desired-state`, { method: 'PUT', json: { spec, message } });
  /** The IPv4 addresses of the device's veth, as the kernel has them. */
  const veth4 = async () => {
    const out = JSON.parse(await execOk('ip', ['netns', 'exec', ns.name, 'ip', '-j', 'addr', 'show', 'dev', ns.nsIf])) as Array<{ addr_info: IpAddr[] }>;
    return out[0]!.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
  };
  const mtu = async () => (JSON.parse(await execOk('ip', ['netns', 'exec', ns.name, 'ip', '-j', 'link', 'show', 'dev', ns.nsIf])) as Array<{ mtu: number }>)[0]!.mtu;
  /** The config the agent rendered: `interfaces` sources one file per interface under interfaces.d. */
  const interfacesFile = async () => {
    const main = await readFile(join(root, 'etc/network/interfaces'), 'utf8');
    return `${main}${await readFile(join(root, 'etc/network/interfaces.d', ns.nsIf), 'utf8')}`;
  };

  /** The device's network as an operator writes it: loopback, and the veth with the address it already has. */
  const network = (extra: Record<string, unknown> = {}, address = `${ns.nsIp}/30`) => ({
    interfaces: [
      { name: 'lo', method: 'loopback' },
      { name: ns.nsIf, method: 'static', addresses: [address], ...extra },
    ],
    confirmTimeoutSec: 10,
  });
  /** An address on another /30 of the same link-local block: the host's end is not on it, so the controller is cut off. */
  const elsewhere = () => {
    const [a, b, c, d] = ns.nsIp.split('.').map(Number) as [number, number, number, number];
    return `${a}.${b}.${(c + 1) % 256 === 169 ? 170 : (c + 1) % 256}.${d}/30`;
  };

  it('enrolls from inside the namespace and comes online through the veth', async () => {
    const tok = await ctl.json('/api/v1/enrollment-tokens', { method: 'POST', json: { description: 'e2e-net', maxUses: 1 } });
    const enroll = await agent.cli(['enroll', '--controller', `grpc://${ns.hostIp}:${ctl.grpcPort}`, '--token', tok.token, '--name', DEVICE]);
    assert.equal(enroll.code, 0, enroll.stderr);
    agent.start();
    await waitFor('the device online', async () => (await ctl.json(`/api/v1/devices/${DEVICE}`)).status === 'online', 30_000);
    assert.deepEqual(await veth4(), [`${ns.nsIp}/30`]);
  });

  it('refuses a network section with a bad field at the API, naming it, and changes nothing', async () => {
    const bad = network({ addresses: [`${ns.nsIp}/33`] });
    const res = await ctl.api(`/api/v1/devices/${DEVICE}/desired-state`, { method: 'PUT', json: { spec: { network: { ...bad, routes: [{ interface: 'nosuch0', to: '192.168.2.0/24' }] } } } });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { issues: Array<{ path: string }> } };
    const paths = body.error.issues.map((i) => i.path);
    assert.ok(paths.includes('spec.network.interfaces[1].addresses[0]'), JSON.stringify(body));
    assert.ok(paths.includes('spec.network.routes[0].interface'), JSON.stringify(body));
    // The plan endpoint validates a proposed spec the same way.
    const plan = await ctl.api(`/api/v1/devices/${DEVICE}/plan`, { method: 'POST', json: { spec: { network: bad } } });
    assert.equal(plan.status, 400);
    assert.equal((await ctl.json(`/api/v1/devices/${DEVICE}`)).desiredRevision, 0);
  });

  it('plans a files change through REST with the built agent: the diff comes back, nothing changes', async () => {
    const job = await ctl.json(`/api/v1/devices/${DEVICE}/plan?wait=60`, {
      method: 'POST',
      json: { spec: { files: { entries: [{ path: '/etc/ibex-e2e/hello', content: 'hello\n' }] } } },
    });
    assert.equal(job.status, 'succeeded', JSON.stringify(job));
    assert.equal(job.result.proposed, true);
    assert.deepEqual(job.result.sections, [
      {
        section: 'files',
        state: 'pending',
        steps: [
          {
            action: 'write',
            path: '/etc/ibex-e2e/hello',
            size: 6,
            sha256: '5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03',
            mode: '0644',
            text: 'write /etc/ibex-e2e/hello (6 bytes, mode 0644; creates it)',
            diff: '--- /dev/null\n+++ b/etc/ibex-e2e/hello\n@@ -0,0 +1 @@\n+hello\n',
          },
        ],
      },
    ]);
    await assert.rejects(readFile(join(root, 'etc/ibex-e2e/hello')), { code: 'ENOENT' });
  });

  it('applies a network section with ifupdown-ng; in_sync once the agent reached the controller again', async () => {
    const put = await putSpec({ network: network() }, 'adopt the veth');
    const s = await waitFor('network in_sync', async () => {
      const x = await section('network');
      return x && x.revision === put.revision && x.state !== 'pending' && x.state !== 'applying' ? x : undefined;
    }, 60_000);
    assert.equal(s.state, 'in_sync', JSON.stringify(s));
    assert.equal((await state()).appliedRevision, put.revision);
    assert.match(await readFile(join(root, 'etc/network/interfaces'), 'utf8'), new RegExp(`^source \\S*/etc/network/interfaces\\.d/${ns.nsIf}$`, 'm'));
    const stanza = await readFile(join(root, 'etc/network/interfaces.d', ns.nsIf), 'utf8');
    assert.match(stanza, new RegExp(`^iface ${ns.nsIf} inet static$`, 'm'));
    // One address per stanza with a dotted netmask: what both ifupdown-ng and BusyBox ifup read.
    assert.match(stanza, new RegExp(`^\\s+address ${ns.nsIp.replaceAll('.', '\\.')}$`, 'm'));
    assert.match(stanza, /^\s+netmask 255\.255\.255\.252$/m);
    assert.deepEqual(await veth4(), [`${ns.nsIp}/30`]);
    assert.equal((await ctl.json(`/api/v1/devices/${DEVICE}`)).status, 'online');
    // in_sync came only after the controller acknowledged the report sent after the change.
    assert.equal(agent.events(/^change confirmed$/).length, 1, agent.logs.slice(-3000));
  });

  it('plans a proposed network change through REST: the file diff and the ifupdown commands, and changes nothing', async () => {
    const fileBefore = await interfacesFile();
    const mtuBefore = await mtu();
    const revision = (await state()).desiredRevision;
    const job = await ctl.json(`/api/v1/devices/${DEVICE}/plan?wait=60`, { method: 'POST', json: { spec: { network: network({ mtu: 1400 }) } } });
    assert.equal(job.status, 'succeeded', JSON.stringify(job));
    assert.equal(job.result.revision, revision);
    const net = (job.result.sections as Array<{ section: string; state: string; steps: Array<{ diff?: string; commands?: string[][] }> }>).find((s) => s.section === 'network');
    assert.equal(net?.state, 'pending', JSON.stringify(job.result));
    const diff = net.steps.map((s) => s.diff ?? '').join('');
    assert.ok(diff.includes(`+++ b/etc/network/interfaces.d/${ns.nsIf}\n`), diff);
    assert.match(diff, /^\+\s*mtu 1400$/m);
    const commands = net.steps.flatMap((s) => s.commands ?? []);
    assert.ok(commands.length > 0, 'the plan lists the commands it would run');
    assert.ok(commands.every((argv) => Array.isArray(argv) && argv.every((a) => typeof a === 'string')), JSON.stringify(commands));
    assert.ok(commands.some((argv) => argv.some((a) => /ifup$/.test(a)) && argv.includes(ns.nsIf)), `an ifup of ${ns.nsIf} in ${JSON.stringify(commands)}`);
    // Nothing changed: the file, the link, the desired revision, the reported state.
    assert.equal(await interfacesFile(), fileBefore);
    assert.equal(await mtu(), mtuBefore);
    assert.deepEqual(await veth4(), [`${ns.nsIp}/30`]);
    assert.equal((await state()).desiredRevision, revision);
    assert.equal((await section('network'))?.state, 'in_sync');
  });

  it('a change that cuts the device off from the controller is reverted by the agent, which reconnects and reports it', async () => {
    const fileBefore = await interfacesFile();
    const sessionsBefore = agent.events(/^connected to the controller$/).length;
    const moved = elsewhere();
    const put = await putSpec({ network: network({}, moved) }, 'move the veth to another subnet (cuts the device off)');
    const started = Date.now();
    // The agent applies it: the veth has only the new address, off the host's /30.
    await waitFor('the moved address on the veth', async () => JSON.stringify(await veth4()) === JSON.stringify([moved]), 30_000, 50);
    // The controller heard at most the "applying" report sent before the change.
    const during = (await section('network'))?.state;
    assert.ok(during === 'pending' || during === 'applying', `the section is ${during} while the device is cut off`);
    // Then nothing confirms it; at the deadline (confirmTimeoutSec 10) the agent restores the old
    // config by itself, reaches the controller again and reports.
    const s = await waitFor('network reverted', async () => {
      const x = await section('network');
      return x && x.revision === put.revision && x.state !== 'pending' && x.state !== 'applying' ? x : undefined;
    }, 90_000, 500);
    assert.equal(s.state, 'reverted', JSON.stringify(s));
    assert.match(s.error ?? '', /not confirmed: the controller was not reachable within 10 s after the change; the previous state was restored/);
    assert.ok(Date.now() - started >= 10_000, 'not reverted before the confirmation deadline');
    assert.deepEqual(await veth4(), [`${ns.nsIp}/30`], 'the original address is back');
    assert.equal(await interfacesFile(), fileBefore);
    assert.equal((await ctl.json(`/api/v1/devices/${DEVICE}`)).status, 'online');
    const st = await state();
    assert.equal(st.inSync, false);
    assert.ok(st.appliedRevision < put.revision);
    assert.equal(agent.events(/^change not confirmed, reverting$/).length, 1, 'reverted once, by the agent');
    // The controller gave the silent stream up meanwhile (offline after 3 heartbeats); the agent connected again.
    assert.ok(agent.events(/^connected to the controller$/).length > sessionsBefore, 'a new session after the revert');
  });
});
