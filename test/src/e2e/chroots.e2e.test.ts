// End to end for the chroots capability: the controller as a process, the built agent binary in a
// network namespace and its own private mount namespace (`unshare --mount --propagation private`,
// so nothing it mounts reaches the host), real Postgres and Redis. The "Alpine" root filesystem is
// the agent tests' busybox-static stand-in (apps/agent/src/testing/chroot-world.ts). Everything
// goes through the REST API; what happened is checked in /proc. Steps run in order.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, readlink, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Rootfs, buildBusyboxRootfs } from '@ibex/agent/dist/testing/chroot-world.js';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { AgentProcess } from './helpers/agent-process.js';
import { ControllerProcess } from './helpers/controller-process.js';
import { execOk, waitFor } from './helpers/exec.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { createNetns, type TestNetns } from './helpers/netns.js';

const DEVICE = 'e2e-chroot-device';

/** Pids whose root directory is `host` (the chroot's processes). */
async function processesIn(host: string): Promise<number[]> {
  const out: number[] = [];
  for (const p of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    const r = await readlink(`/proc/${p}/root`).catch(() => '');
    if (r === host || r.startsWith(`${host}/`)) out.push(Number(p));
  }
  return out;
}

describe('chroots end to end: an Alpine chroot installed, run and torn down through REST by the built agent', () => {
  let db: TestDatabase;
  let ns: TestNetns;
  let ctl: ControllerProcess;
  let agent: AgentProcess;
  let root: string;
  let work: string;
  let rootfs: Rootfs;
  let proxy: FaultProxy;

  before(async () => {
    db = await createTestDatabase();
    ns = await createNetns();
    root = await mkdtemp(join(tmpdir(), 'ibex-e2e-chroot-root-'));
    work = await mkdtemp(join(tmpdir(), 'ibex-e2e-chroot-work-'));
    rootfs = buildBusyboxRootfs(work);
    await mkdir(join(root, 'srv'), { recursive: true });
    await mkdir(join(root, 'etc'), { recursive: true });
    await copyFile(rootfs.tarball, join(root, 'srv/rootfs.tar.gz'));
    await writeFile(join(root, 'etc/resolv.conf'), 'nameserver 192.0.2.1\n');
    ctl = new ControllerProcess({ databaseUrl: db.url, env: { IBEX_HEARTBEAT_INTERVAL_MS: '1000', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_LOG_LEVEL: 'warn', IBEX_ARTIFACTS_DIR: join(work, 'artifacts') } });
    await ctl.start();
    // The REST port listens on loopback; the agent downloads artifacts through a plain forwarder on the host side of its veth.
    proxy = new FaultProxy({ host: '127.0.0.1', port: ctl.httpPort }, ns.hostIp);
    await proxy.start();
    await ctl.restart({ IBEX_ARTIFACTS_URL: `http://{host}:${proxy.port}/api/v1/artifacts` });
    // unshare execs the agent: the pid stays the agent's, and its mounts stay in its namespace.
    agent = new AgentProcess([...ns.prefix(), 'unshare', '--mount', '--propagation', 'private', '--'], root);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => {});
    // The chroot's service lives in the agent's mount namespace: kill it so the namespace (and its mounts) go.
    if (root) for (const p of await processesIn(join(root, 'srv/alpine')).catch(() => [])) process.kill(p, 'SIGKILL');
    await ctl?.stop('SIGKILL').catch(() => {});
    await proxy?.stop().catch(() => {});
    await ns?.destroy();
    if (ctl) await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await db?.drop();
    if (root) await rm(root, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  const section = async () =>
    ((await ctl.json(`/api/v1/devices/${DEVICE}/state`)).sections as Array<{ section: string; state: string; revision: number; error: string | null }>).find((s) => s.section === 'chroots');
  const putSpec = (spec: unknown, message: string) => ctl.json(`/api/v1/devices/${DEVICE}/desired-state`, { method: 'PUT', json: { spec: { chroots: spec }, message } });
  const settled = (revision: number, timeoutMs = 90_000) =>
    waitFor(`chroots settled at revision ${revision}`, async () => {
      const s = await section();
      return s && s.revision === revision && s.state !== 'pending' && s.state !== 'applying' ? s : undefined;
    }, timeoutMs, 250);
  const chroot = (extra: Record<string, unknown> = {}) => ({
    alpine: { path: '/srv/alpine', arch: 'x86_64', source: { path: '/srv/rootfs.tar.gz', sha256: rootfs.sha256 }, hostname: 'e2e-alpine', services: ['ticker'], boot: { kind: 'openrc' }, ...extra },
  });

  it('enrolls and comes online', async () => {
    const tok = await ctl.json('/api/v1/enrollment-tokens', { method: 'POST', json: { description: 'e2e-chroot', maxUses: 1 } });
    const enroll = await agent.cli(['enroll', '--controller', `grpc://${ns.hostIp}:${ctl.grpcPort}`, '--token', tok.token, '--name', DEVICE]);
    assert.equal(enroll.code, 0, enroll.stderr);
    agent.start();
    await waitFor('the device online', async () => (await ctl.json(`/api/v1/devices/${DEVICE}`)).status === 'online', 30_000);
  });

  it('refuses a bad chroots section at the API, naming the field, and stores nothing', async () => {
    const res = await ctl.api(`/api/v1/devices/${DEVICE}/desired-state`, { method: 'PUT', json: { spec: { chroots: chroot({ source: { path: '/srv/rootfs.tar.gz', sha256: 'nope' } }) } } });
    assert.equal(res.status, 400);
    const paths = ((await res.json()) as { error: { issues: Array<{ path: string }> } }).error.issues.map((i) => i.path);
    assert.ok(paths.includes('spec.chroots.alpine.source.sha256'), JSON.stringify(paths));
    assert.equal((await ctl.json(`/api/v1/devices/${DEVICE}`)).desiredRevision, 0);
  });

  it('a wrong checksum fails the section and writes nothing', async () => {
    const put = await putSpec(chroot({ source: { path: '/srv/rootfs.tar.gz', sha256: 'd'.repeat(64) } }), 'a tarball that is not the one named');
    const s = await settled(put.revision);
    assert.equal(s.state, 'failed', JSON.stringify(s));
    assert.match(s.error ?? '', /expected d{64}; nothing was changed/);
    assert.ok(!existsSync(join(root, 'srv/alpine')));
  });

  it('installs the chroot and runs its service inside, with the OpenRC boot hook on the host', async () => {
    const put = await putSpec(chroot(), 'Alpine in a chroot');
    const s = await settled(put.revision);
    assert.equal(s.state, 'in_sync', JSON.stringify(s));
    const host = join(root, 'srv/alpine');
    assert.equal(await readFile(join(host, 'etc/hostname'), 'utf8'), 'e2e-alpine\n');
    const procs = await processesIn(host);
    assert.equal(procs.length, 1, 'the ticker service runs chrooted');
    // (Its own mountinfo shows paths relative to the chroot: read the namespace's from its root.)
    const mounts = await execOk('nsenter', ['-t', String(procs[0]), '-m', '--', 'cat', '/proc/self/mountinfo']);
    assert.ok(mounts.includes(` ${host}/run `) && mounts.includes(` ${host}/proc `), 'its mounts are in the agent\'s namespace');
    assert.ok(!(await readFile('/proc/self/mountinfo', 'utf8')).includes(host), 'and not on the host');
    assert.match(await readFile(join(root, 'etc/local.d/ibex-chroot-alpine.start'), 'utf8'), /'chroot' 'up' '\/srv\/alpine' '--root'/);
  });

  it('installs from an artifact named by name@version: the agent downloads it from the controller and verifies it; deleting that artifact is refused while it is named', async () => {
    const up = await fetch(`${ctl.baseUrl}/api/v1/artifacts?name=busybox-root&version=1&kind=chroot-tarball`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ctl.adminToken}`, 'content-type': 'application/gzip' },
      body: await readFile(rootfs.tarball),
    });
    const artifact = (await up.json()) as { id: string; sha256: string; size: number };
    assert.equal(up.status, 201, JSON.stringify(artifact));
    assert.equal(artifact.sha256, rootfs.sha256);
    const put = await putSpec({ 'alpine-art': { path: '/srv/alpine-art', arch: 'x86_64', source: { artifact: 'busybox-root@1' }, hostname: 'e2e-art', boot: { kind: 'none' } } }, 'Alpine from the artifact store');
    // The controller stored the resolved artifact: the agent gets the id and sha256, not the name.
    const stored = await ctl.json(`/api/v1/devices/${DEVICE}/desired-state`);
    assert.deepEqual(stored.spec.chroots['alpine-art'].source, { artifact: { id: artifact.id, name: 'busybox-root', version: '1', sha256: rootfs.sha256, size: artifact.size } });
    const s = await settled(put.revision);
    assert.equal(s.state, 'in_sync', `${JSON.stringify(s)}\nagent log:\n${agent.logs.slice(-3000)}`);
    assert.equal(await readFile(join(root, 'srv/alpine-art/etc/hostname'), 'utf8'), 'e2e-art\n');
    const del = await ctl.api(`/api/v1/artifacts/${artifact.id}`, { method: 'DELETE' });
    assert.equal(del.status, 409);
    assert.match(((await del.json()) as { error: { message: string } }).error.message, /referenced by the desired state of device "e2e-chroot-device" \(revision \d+\)/);
    assert.equal((await ctl.api(`/api/v1/artifacts/${artifact.id}`)).status, 200, 'still there');
    // Not named any more (the chroot goes): now it can be deleted.
    const gone = await putSpec({ 'alpine-art': { path: '/srv/alpine-art', ensure: 'absent' } }, 'remove the artifact chroot');
    assert.equal((await settled(gone.revision)).state, 'in_sync');
    assert.ok(!existsSync(join(root, 'srv/alpine-art')));
    assert.equal((await ctl.api(`/api/v1/artifacts/${artifact.id}`, { method: 'DELETE' })).status, 204);
  });

  it('tears it down: the service stops, the mounts go, the directory and the hook are deleted', async () => {
    const put = await putSpec({ alpine: { path: '/srv/alpine', ensure: 'absent', boot: { kind: 'openrc' } } }, 'remove the chroot');
    const s = await settled(put.revision);
    assert.equal(s.state, 'in_sync', JSON.stringify(s));
    assert.ok(!existsSync(join(root, 'srv/alpine')));
    assert.ok(!existsSync(join(root, 'etc/local.d/ibex-chroot-alpine.start')));
    assert.deepEqual(await processesIn(join(root, 'srv/alpine')), []);
  });
});
