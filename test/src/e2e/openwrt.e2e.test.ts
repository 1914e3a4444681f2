// End to end for the openwrt capability: the controller as a process, the built agent binary in a
// network namespace joined to the host by a veth (its way to the controller), real Postgres and
// Redis. The OpenWrt container is the agent's test stand-in (apps/agent/src/testing/openwrt-standin.ts:
// a process in its own namespaces, chrooted into BusyBox with stand-ins of uci and the init scripts;
// Debian has no OpenWrt). Everything goes through the REST API; what happened is checked in the
// namespaces. Steps run in order.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StandinOpenwrt } from '@ibex/agent/dist/testing/openwrt-standin.js';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { AgentProcess } from './helpers/agent-process.js';
import { ControllerProcess } from './helpers/controller-process.js';
import { exec, execOk, waitFor } from './helpers/exec.js';
import { createNetns, type TestNetns } from './helpers/netns.js';

const DEVICE = 'e2e-openwrt-device';

describe('openwrt end to end: an OpenWrt container wired and configured through REST by the built agent', () => {
  let db: TestDatabase;
  let ns: TestNetns;
  let ctl: ControllerProcess;
  let agent: AgentProcess;
  let owrt: StandinOpenwrt;
  let root: string;

  before(async () => {
    db = await createTestDatabase();
    ns = await createNetns();
    root = await mkdtemp(join(tmpdir(), 'ibex-e2e-owrt-root-'));
    await mkdir(join(root, 'run'));
    // The device's LAN port: a veth inside its namespace, up, its peer up too.
    await execOk('ip', ['netns', 'exec', ns.name, 'ip', 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'lan0p']);
    for (const l of ['lan0', 'lan0p']) await execOk('ip', ['netns', 'exec', ns.name, 'ip', 'link', 'set', l, 'up']);
    owrt = StandinOpenwrt.create();
    await owrt.start();
    await writeFile(join(root, 'run/openwrt.pid'), `${owrt.pid}\n`);
    ctl = new ControllerProcess({ databaseUrl: db.url, env: { IBEX_HEARTBEAT_INTERVAL_MS: '1000', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_LOG_LEVEL: 'warn' } });
    await ctl.start();
    agent = new AgentProcess(ns.prefix(), root);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => {});
    await ctl?.stop('SIGKILL').catch(() => {});
    await owrt?.destroy();
    await ns?.destroy();
    if (ctl) await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await db?.drop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  const section = async () =>
    ((await ctl.json(`/api/v1/devices/${DEVICE}/state`)).sections as Array<{ section: string; state: string; revision: number; error: string | null; detail: unknown }>).find((s) => s.section === 'openwrt');
  const putSpec = (spec: unknown, message: string) => ctl.json(`/api/v1/devices/${DEVICE}/desired-state`, { method: 'PUT', json: { spec: { openwrt: spec }, message } });
  const settled = (revision: number, timeoutMs = 90_000) =>
    waitFor(`openwrt settled at revision ${revision}`, async () => {
      const s = await section();
      return s && s.revision === revision && s.state !== 'pending' && s.state !== 'applying' ? s : undefined;
    }, timeoutMs, 250);
  const openwrt = (lan = '192.168.81.1/24', shimRoutes: string[] = [], confirmTimeoutSec = 30) => ({
    container: { runtime: 'process', pidFile: '/run/openwrt.pid' },
    links: [{ type: 'macvlan', name: 'eth0', parent: { name: 'lan0' }, shim: { name: 'e2eshim', addresses: ['192.168.81.2/24'], routes: shimRoutes } }],
    config: { lan: { devices: ['eth0'], address: lan } },
    confirmTimeoutSec,
  });
  const ping = (ip: string) => exec('ip', ['netns', 'exec', ns.name, 'busybox', 'ping', '-c', '1', '-W', '3', ip]);
  const lanAddress = () => owrt.exec(['/sbin/uci', 'get', 'network.lan.ipaddr']).stdout.trim();

  it('enrolls from inside the namespace and comes online', async () => {
    const tok = await ctl.json('/api/v1/enrollment-tokens', { method: 'POST', json: { description: 'e2e-openwrt', maxUses: 1 } });
    const enroll = await agent.cli(['enroll', '--controller', `grpc://${ns.hostIp}:${ctl.grpcPort}`, '--token', tok.token, '--name', DEVICE]);
    assert.equal(enroll.code, 0, enroll.stderr);
    agent.start();
    await waitFor('the device online', async () => (await ctl.json(`/api/v1/devices/${DEVICE}`)).status === 'online', 30_000);
  });

  it('refuses a bad openwrt section at the API, naming the fields, and stores nothing', async () => {
    const bad = { ...openwrt(), config: { lan: { devices: ['eth9'], address: '192.168.81.0/24' } } };
    const res = await ctl.api(`/api/v1/devices/${DEVICE}/desired-state`, { method: 'PUT', json: { spec: { openwrt: bad } } });
    assert.equal(res.status, 400);
    const paths = ((await res.json()) as { error: { issues: Array<{ path: string }> } }).error.issues.map((i) => i.path);
    assert.ok(paths.includes('spec.openwrt.config.lan.address'), JSON.stringify(paths));
    assert.equal((await ctl.json(`/api/v1/devices/${DEVICE}`)).desiredRevision, 0);
  });

  it('applies the section: the container gets its link, the host its shim, OpenWrt its config; in sync once confirmed', async () => {
    const put = await putSpec(openwrt(), 'wire and configure the OpenWrt container');
    const s = await settled(put.revision);
    assert.equal(s.state, 'in_sync', JSON.stringify(s));
    assert.equal(lanAddress(), '192.168.81.1');
    assert.ok(owrt.links().some((l) => l.ifname === 'eth0' && l.linkinfo?.info_kind === 'macvlan'));
    assert.equal((await ping('192.168.81.1')).code, 0, 'the device reaches OpenWrt through the shim');
    assert.equal(agent.events(/^change confirmed$/).length, 1);
  });

  it('plans a proposed change through REST: the UCI diff and batch, nothing changes', async () => {
    const job = await ctl.json(`/api/v1/devices/${DEVICE}/plan?wait=60`, { method: 'POST', json: { spec: { openwrt: openwrt('192.168.81.254/24') } } });
    assert.equal(job.status, 'succeeded', JSON.stringify(job));
    const o = (job.result.sections as Array<{ section: string; state: string; steps: Array<{ action: string; diff?: string; batch?: string[] }> }>).find((x) => x.section === 'openwrt')!;
    assert.equal(o.state, 'pending');
    const step = o.steps.find((x) => x.action === 'uci-apply')!;
    assert.deepEqual(step.batch, ["set network.lan.ipaddr='192.168.81.254'"]);
    assert.match(step.diff!, /^-\toption ipaddr '192\.168\.81\.1'$/m);
    assert.equal(lanAddress(), '192.168.81.1');
  });

  it('a change that cuts the device off from the controller (a shim route that swallows its traffic) is undone at the deadline', async () => {
    const put = await putSpec(openwrt('192.168.81.1/24', [`${ns.hostIp}/32`], 10), 'route the controller into the OpenWrt LAN (cuts the device off)');
    const started = Date.now();
    const s = await settled(put.revision, 120_000);
    assert.equal(s.state, 'reverted', JSON.stringify(s));
    assert.match(s.error ?? '', /not confirmed: the controller was not reachable within 10 s after the change; the previous state was restored/);
    assert.ok(Date.now() - started >= 10_000);
    const routes = await execOk('ip', ['netns', 'exec', ns.name, 'ip', '-j', 'route', 'show', 'dev', 'e2eshim']);
    assert.ok(!routes.includes(ns.hostIp), `the route is gone: ${routes}`);
    assert.equal((await ctl.json(`/api/v1/devices/${DEVICE}`)).status, 'online');
    assert.equal((await ping('192.168.81.1')).code, 0, 'the rest is as before');
  });
});
