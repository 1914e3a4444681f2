// End to end, artifacts: the controller as a process, the built agent binary in its own network
// namespace with a real btrfs volume. Artifacts are uploaded through REST, a generations upgrade
// names one by name@version, and the agent downloads it with its device credential through a
// fault-injecting proxy in front of the REST port: a cut connection and a SIGKILLed agent both
// resume from the byte where they stopped (the proxy's record of each request's Range and of
// the bytes it passed proves it), and a blob damaged on the controller's disk is refused.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { AgentProcess } from './helpers/agent-process.js';
import { createBtrfs, type TestBtrfs } from './helpers/btrfs.js';
import { ControllerProcess } from './helpers/controller-process.js';
import { execOk, waitFor } from './helpers/exec.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { createNetns, type TestNetns } from './helpers/netns.js';

const DEVICE = 'e2e-artifacts';
const FINISHED = ['succeeded', 'failed', 'rejected', 'timed_out', 'cancelled', 'expired'];
const MIB = 1024 * 1024;

/** A root filesystem tarball (static BusyBox, /etc/marker) padded with incompressible bytes, so a download takes a while. */
async function paddedRootfs(dir: string, marker: string, padMiB: number): Promise<Buffer> {
  const tree = join(dir, `${marker}-tree`);
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp']) await mkdir(join(tree, d), { recursive: true });
  await copyFile('/bin/busybox', join(tree, 'bin/busybox'));
  await symlink('busybox', join(tree, 'bin/sh'));
  await writeFile(join(tree, 'etc/marker'), `${marker}\n`);
  await writeFile(join(tree, 'padding.bin'), randomBytes(padMiB * MIB));
  const path = join(dir, `${marker}.tar`);
  await execOk('tar', ['-c', '-f', path, '--numeric-owner', '-C', tree, '.']);
  await rm(tree, { recursive: true, force: true });
  return readFile(path);
}

describe('artifacts end to end: upload, reference from an upgrade, resumable verified download by the agent', () => {
  let db: TestDatabase;
  let ns: TestNetns;
  let ctl: ControllerProcess;
  let agent: AgentProcess;
  let vol: TestBtrfs;
  let proxy: FaultProxy;
  let artifactsDir: string;
  let work: string;

  before(async () => {
    db = await createTestDatabase();
    ns = await createNetns();
    vol = await createBtrfs(400);
    artifactsDir = await mkdtemp(join(tmpdir(), 'ibex-e2e-artifacts-'));
    work = await mkdtemp(join(tmpdir(), 'ibex-e2e-artifact-work-'));
    ctl = new ControllerProcess({ databaseUrl: db.url, env: { IBEX_HEARTBEAT_INTERVAL_MS: '1000', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_LOG_LEVEL: 'warn', IBEX_ARTIFACTS_DIR: artifactsDir } });
    // The REST port listens on loopback; the agent reaches it through the proxy on the host side of its veth.
    await ctl.start();
    proxy = new FaultProxy({ host: '127.0.0.1', port: ctl.httpPort }, ns.hostIp);
    await proxy.start();
    await ctl.restart({ IBEX_ARTIFACTS_URL: `http://{host}:${proxy.port}/api/v1/artifacts` });
    agent = new AgentProcess(ns.prefix(), vol.root);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => {});
    await proxy?.stop().catch(() => {});
    await ctl?.stop('SIGKILL').catch(() => {});
    await ns?.destroy();
    if (ctl) await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await db?.drop();
    await vol?.destroy();
    await rm(artifactsDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  const upload = async (name: string, version: string, bytes: Buffer) => {
    const r = await fetch(`${ctl.baseUrl}/api/v1/artifacts?name=${name}&version=${version}&kind=generation-tarball`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ctl.adminToken}`, 'content-type': 'application/x-tar' },
      body: bytes,
    });
    const body = await r.json();
    assert.equal(r.status, 201, JSON.stringify(body));
    return body as { id: string; sha256: string; size: number };
  };
  const job = (type: string, params: object) => ctl.json(`/api/v1/devices/${DEVICE}/jobs`, { method: 'POST', json: { type, params } });
  const finished = (id: string, timeoutMs = 180_000) =>
    waitFor(`job ${id} to finish`, async () => {
      const j = await ctl.json(`/api/v1/jobs/${id}`);
      return FINISHED.includes(j.status) ? j : undefined;
    }, timeoutMs, 250);
  const succeeded = async (id: string) => {
    const done = await finished(id);
    assert.equal(done.status, 'succeeded', `${JSON.stringify({ status: done.status, error: done.error, logs: done.logs })}\nagent log:\n${agent.logs.slice(-3000)}`);
    return done;
  };
  const marker = async () => (await readFile(join(vol.host, 'current/0/@/etc/marker'), 'utf8').catch(() => '')).trim();
  const findPart = async (sha: string): Promise<string | undefined> => {
    const walk = async (d: string): Promise<string | undefined> => {
      for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          const f = await walk(p);
          if (f) return f;
        } else if (e.name === `${sha}.part`) return p;
      }
      return undefined;
    };
    return walk(join(vol.root, 'var/lib/ibex-agent'));
  };

  it('enrolls the device and lays out generations', async () => {
    const tok = await ctl.json('/api/v1/enrollment-tokens', { method: 'POST', json: { description: 'e2e artifacts', maxUses: 1 } });
    const enroll = await agent.cli(['enroll', '--controller', `grpc://${ns.hostIp}:${ctl.grpcPort}`, '--token', tok.token, '--name', DEVICE]);
    assert.equal(enroll.code, 0, enroll.stderr);
    agent.start();
    await waitFor('the device online', async () => (await ctl.json(`/api/v1/devices/${DEVICE}`)).status === 'online', 30_000);
    await succeeded((await job('generations.init', { volume: vol.volume, image: { kind: 'empty' } })).id);
  });

  it('upgrades from an artifact named name@version, resuming at the exact byte after a cut connection', async () => {
    const bytes = await paddedRootfs(work, 'one', 6);
    const a = await upload('rootfs', '1', bytes);
    proxy.requests.length = 0;
    proxy.cutNextAfter = 2 * MIB + 12345;
    const j = await job('generations.upgrade', { from: { kind: 'tarball', artifact: 'rootfs@1' }, trial: false });
    assert.deepEqual(j.params.from.artifact, { id: a.id, name: 'rootfs', version: '1', sha256: a.sha256, size: bytes.length }, 'the controller resolved the reference when the job was stored');
    const done = await succeeded(j.id);
    assert.equal(await marker(), 'one');
    const served = proxy.requests.filter((r) => r.path === `/api/v1/artifacts/${a.id}/download`);
    assert.equal(served.length, 2, JSON.stringify(served));
    const cutAt = 2 * MIB + 12345;
    assert.deepEqual({ ...served[0], path: undefined }, { path: undefined, range: null, status: 200, bodyBytes: cutAt, cut: true });
    // The agent resumes from the last byte it wrote: all it read before the cut (fetch may drop
    // the last chunks it had not read yet when the stream errors), never more, never from 0.
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(served[1]!.range ?? '')?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= cutAt && cutAt - resumedAt <= 256 * 1024, `resumed at ${served[1]!.range} after a cut at ${cutAt}`);
    assert.deepEqual({ status: served[1]!.status, bodyBytes: served[1]!.bodyBytes, cut: served[1]!.cut }, { status: 206, bodyBytes: bytes.length - resumedAt, cut: false }, 'exactly the rest was sent again');
    assert.ok(done.logs.some((l: { text: string }) => l.text.includes(`interrupted at byte ${resumedAt}`)), `the job log says where it resumed: ${JSON.stringify(done.logs)}`);
  });

  it('resumes after the agent is SIGKILLed mid-download, from the bytes it had kept; a referenced artifact cannot be deleted', async () => {
    const bytes = await paddedRootfs(work, 'two', 8);
    const a = await upload('rootfs', '2', bytes);
    proxy.requests.length = 0;
    proxy.bytesPerSecond = 1 * MIB;
    const j1 = await job('generations.upgrade', { from: { kind: 'tarball', artifact: 'rootfs@2' }, trial: false });
    await waitFor('2 MiB of the download passed', async () => (proxy.requests[0]?.bodyBytes ?? 0) > 2 * MIB, 60_000, 50);

    const refused = await ctl.api('/api/v1/artifacts/rootfs@2', { method: 'DELETE' });
    assert.equal(refused.status, 409);
    assert.match(((await refused.json()) as { error: { message: string } }).error.message, new RegExp(`job ${j1.id} \\(generations\\.upgrade, running\\) on device "${DEVICE}"`));

    await agent.stop('SIGKILL');
    const part = await findPart(a.sha256);
    assert.ok(part, 'the partial download is on the device');
    const kept = (await stat(part).catch(() => ({ size: 0 }))).size;
    assert.ok(kept > 0 && kept < bytes.length, `kept ${kept} bytes`);
    proxy.bytesPerSecond = 0;
    agent.start();
    const first = await finished(j1.id);
    assert.equal(first.status, 'failed', 'the interrupted job is not silently re-run');
    assert.notEqual(await marker(), 'two');

    const j2 = await job('generations.upgrade', { from: { kind: 'tarball', artifact: 'rootfs@2' }, trial: false });
    await succeeded(j2.id);
    assert.equal(await marker(), 'two');
    const served = proxy.requests.filter((r) => r.path === `/api/v1/artifacts/${a.id}/download`);
    assert.equal(served.length, 2, JSON.stringify(served));
    assert.deepEqual(served[1], { path: served[1]!.path, range: `bytes=${kept}-`, status: 206, bodyBytes: bytes.length - kept, cut: false });
    assert.equal(await findPart(a.sha256), undefined, 'nothing left behind');
    // Finished: nothing references it any more.
    assert.equal((await ctl.api('/api/v1/artifacts/rootfs@2', { method: 'DELETE' })).status, 204);
  });

  it('refuses a blob damaged on the controller disk: the job fails and the volume is untouched', async () => {
    const bytes = await paddedRootfs(work, 'three', 1);
    const a = await upload('rootfs', '3', bytes);
    const blob = join(artifactsDir, 'sha256', a.sha256.slice(0, 2), a.sha256);
    const damaged = Buffer.from(await readFile(blob));
    damaged[damaged.length - 100] = damaged[damaged.length - 100]! ^ 0xff;
    await writeFile(blob, damaged);
    const before = await ctl.json(`/api/v1/devices/${DEVICE}/generations`);
    const done = await finished((await job('generations.upgrade', { from: { kind: 'tarball', artifact: 'rootfs@3' }, trial: false })).id);
    assert.equal(done.status, 'failed');
    const actual = createHash('sha256').update(damaged).digest('hex');
    assert.match(done.error, new RegExp(`sha256 ${actual}, expected ${a.sha256}; nothing was changed`));
    assert.equal(await marker(), 'two');
    const after = await ctl.json(`/api/v1/devices/${DEVICE}/generations`);
    assert.deepEqual(after.generations.map((g: { id: string }) => g.id), before.generations.map((g: { id: string }) => g.id));
  });
});
