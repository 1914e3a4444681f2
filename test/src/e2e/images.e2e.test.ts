// VM image builds through the controller as a real process: REST create / progress / download,
// the build run as a BullMQ job, and a controller SIGKILLed half way through an archive (the
// build is retried by the next controller, or failed after its last attempt; never stuck).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { buildImage, LocalImageSourceResolver } from '@ibex/image';
import { makeBusyboxRootfs } from '@ibex/image/testing';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { imageSpecSchema } from '@ibex/spec';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import pg from 'pg';
import { ControllerProcess } from './helpers/controller-process.js';
import { waitFor } from './helpers/exec.js';
import { IbexctlHome } from './helpers/ibexctl.js';

describe('image builds (controller process)', () => {
  let db: TestDatabase;
  let sql: pg.Client;
  let ctl: ControllerProcess;
  let imageDir: string;
  const rootfs = makeBusyboxRootfs();
  // The controller resolves paths under IBEX_IMAGE_SOURCE_DIR (the temporary directory here).
  const spec = (hostname: string) => ({
    name: `vm-${hostname}`,
    base: { path: `/${basename(rootfs)}` },
    hostname,
    network: { interfaces: [{ name: 'lo', method: 'loopback' }, { name: 'eth0', method: 'dhcp' }] },
  });

  before(async () => {
    db = await createTestDatabase();
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    imageDir = await mkdtemp(join(tmpdir(), 'ibex-e2e-images-'));
    ctl = new ControllerProcess({ databaseUrl: db.url, env: { IBEX_IMAGE_DIR: imageDir, IBEX_ARTIFACTS_DIR: join(imageDir, 'artifacts'), IBEX_IMAGE_SOURCE_DIR: join(rootfs, '..'), IBEX_IMAGE_BUILD_STALE_MS: '2000', IBEX_LOG_LEVEL: 'warn' } });
    await ctl.start();
  });
  after(async () => {
    await ctl?.stop('SIGKILL');
    await sql?.end();
    await db?.drop();
    await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await rm(imageDir, { recursive: true, force: true });
    await rm(rootfs, { recursive: true, force: true });
  });

  const finished = (id: string, ms = 120_000) =>
    waitFor(`image build ${id} to finish`, async () => {
      const b = await ctl.json(`/api/v1/image-builds/${id}`);
      return b.status === 'succeeded' || b.status === 'failed' ? b : undefined;
    }, ms, 250);

  it('refuses a bad spec naming the field, and builds a good one: progress, sha256, download', async () => {
    const bad = await ctl.api('/api/v1/image-builds', { method: 'POST', json: { spec: { ...spec('x'), hostname: 'bad_name', kernel: { release: '6.1', modules: ['a b'] } } } });
    assert.equal(bad.status, 400);
    const err = (await bad.json()) as { error: { issues: Array<{ path: string }> } };
    assert.deepEqual(err.error.issues.map((i) => i.path).sort(), ['spec.hostname', 'spec.kernel.modules[0]']);
    assert.equal((await sql.query('SELECT count(*)::int AS n FROM image_build')).rows[0].n, 0, 'nothing was created');

    const created = await ctl.json('/api/v1/image-builds', { method: 'POST', json: { spec: spec('rest-1') } });
    assert.equal(created.status, 'queued');
    assert.equal((await ctl.api(`/api/v1/image-builds/${created.id}/image`)).status, 409, 'no download before it is built');
    const b = await finished(created.id);
    assert.equal(b.status, 'succeeded', JSON.stringify(b));
    assert.equal(b.progress.percent, 100);
    assert.equal(b.attempt, 1);
    assert.match(b.sha256, /^[0-9a-f]{64}$/);
    const dl = await ctl.api(b.downloadUrl);
    assert.equal(dl.status, 200);
    assert.equal(dl.headers.get('content-type'), 'application/gzip');
    const bytes = Buffer.from(await dl.arrayBuffer());
    assert.equal(bytes.length, b.size);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), b.sha256);
    // The same builder as the agent's and the library's: the same bytes from the same spec.
    const local = await buildImage(imageSpecSchema.parse({ ...spec('rest-1'), base: { path: rootfs } }), new LocalImageSourceResolver(), new PassThrough().resume());
    assert.equal(local.sha256, b.sha256);
    const audit = await sql.query(`SELECT data FROM audit_event WHERE action = 'image_build.create' AND "targetId" = $1`, [created.id]);
    assert.equal(audit.rows.length, 1);
    // The image is an artifact of the store (kind vm-image, version = the build id), downloadable there too.
    assert.equal(b.artifact, `vm-rest-1@${created.id}`);
    const art = await ctl.json(`/api/v1/artifacts/${b.artifact}`);
    assert.deepEqual({ kind: art.kind, sha256: art.sha256, size: art.size }, { kind: 'vm-image', sha256: b.sha256, size: b.size });
    const viaStore = Buffer.from(await (await ctl.api(`/api/v1/artifacts/${art.id}/download`)).arrayBuffer());
    assert.ok(viaStore.equals(bytes));
    assert.deepEqual((await readdir(imageDir)).filter((f) => f.endsWith('.cpio.gz')), [], 'nothing written beside the artifact store');
  });

  it('a base named as an artifact is read from the artifact store and its sha256 verified; an unknown one is refused naming the field', async () => {
    const tarball = join(imageDir, 'base.tar');
    execFileSync('tar', ['-C', rootfs, '-cf', tarball, '.']);
    const body = await readFile(tarball);
    const up = await fetch(`${ctl.baseUrl}/api/v1/artifacts?name=busybox-base&version=1&kind=file`, { method: 'POST', headers: { authorization: `Bearer ${ctl.adminToken}`, 'content-type': 'application/x-tar' }, body });
    const base = (await up.json()) as { id: string; sha256: string };
    assert.equal(up.status, 201, JSON.stringify(base));

    const unknown = await ctl.api('/api/v1/image-builds', { method: 'POST', json: { spec: { ...spec('art-0'), base: { artifact: 'busybox-base@9' } } } });
    assert.equal(unknown.status, 400);
    const issues = ((await unknown.json()) as { error: { issues: Array<{ path: string; message: string }> } }).error.issues;
    assert.equal(issues[0]?.path, 'spec.base.artifact');
    assert.match(issues[0]!.message, /does not exist; upload it first/);

    const created = await ctl.json('/api/v1/image-builds', { method: 'POST', json: { spec: { ...spec('art-1'), base: { artifact: 'busybox-base@1' } } } });
    const b = await finished(created.id);
    assert.equal(b.status, 'succeeded', JSON.stringify(b));
    // The same tree as the path-based build: the same bytes from a base that came out of the store.
    const local = await buildImage(imageSpecSchema.parse({ ...spec('art-1'), base: { path: tarball } }), new LocalImageSourceResolver(), new PassThrough().resume());
    assert.equal(b.sha256, local.sha256);

    // A byte of the stored blob flipped: the build refuses the base, naming the field and both hashes.
    const blob = join(imageDir, 'artifacts', 'sha256', base.sha256.slice(0, 2), base.sha256);
    const bad = Buffer.from(body);
    bad[100] = bad[100]! ^ 0xff;
    await chmod(blob, 0o600);
    await writeFile(blob, bad);
    const spoiled = await ctl.json('/api/v1/image-builds', { method: 'POST', json: { spec: { ...spec('art-2'), base: { artifact: base.id } } } });
    const f = await finished(spoiled.id);
    assert.equal(f.status, 'failed');
    assert.match(f.error, new RegExp(`base.*artifact ${base.id} has sha256 [0-9a-f]{64}, not the ${base.sha256}`));
    await writeFile(blob, body); // (the next test uploads the same bytes again: the store keeps one blob per sha256)
  });

  it('ibexctl images build -f spec.yaml --wait, get, download (sha256 checked); a bad spec is refused before anything is sent', async () => {
    const home = await IbexctlHome.create();
    try {
      const env = { IBEX_SERVER: ctl.baseUrl, IBEX_TOKEN: ctl.adminToken };
      const yaml = join(imageDir, 'spec.yaml');
      await writeFile(yaml, `name: cli-vm\nbase: { path: /${basename(rootfs)} }\nhostname: cli-1\nnetwork:\n  interfaces:\n    - { name: lo, method: loopback }\n    - { name: eth0, method: dhcp }\n`);
      const built = await home.run(['images', 'build', '-f', yaml, '--wait', '-o', 'json'], { env });
      assert.equal(built.code, 0, built.stderr);
      const b = JSON.parse(built.stdout);
      assert.equal(b.status, 'succeeded');
      assert.match(built.stderr, /succeeded 100% done\n$/);
      const got = await home.run(['images', 'get', b.id], { env });
      assert.match(got.stdout, new RegExp(`sha256: +${b.sha256}`));
      const to = join(imageDir, 'cli-vm.cpio.gz');
      const dl = await home.run(['images', 'download', b.id, '--to', to], { env });
      assert.equal(dl.code, 0, dl.stderr);
      assert.equal(createHash('sha256').update(await readFile(to)).digest('hex'), b.sha256);
      await writeFile(yaml, `name: cli-vm\nbase: { path: ${rootfs} }\nhostname: -bad-\n`);
      const before = (await sql.query('SELECT count(*)::int AS n FROM image_build')).rows[0].n;
      const bad = await home.run(['images', 'build', '-f', yaml], { env });
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /hostname: must be a host name label/);
      assert.equal((await sql.query('SELECT count(*)::int AS n FROM image_build')).rows[0].n, before);
    } finally {
      await home.remove();
    }
  });

  it('an artifact a running build names cannot be deleted until the build is done', async () => {
    const body = await readFile(join(imageDir, 'base.tar'));
    const up = await fetch(`${ctl.baseUrl}/api/v1/artifacts?name=busybox-base&version=2&kind=file`, { method: 'POST', headers: { authorization: `Bearer ${ctl.adminToken}`, 'content-type': 'application/x-tar' }, body });
    assert.equal(up.status, 201);
    // Killed mid-build, then a controller that does not consider it stale yet: the build stays running.
    await ctl.restart({ IBEX_CONTROLLER_FAILPOINTS: 'image-build-mid-archive' });
    const held = await ctl.json('/api/v1/image-builds', { method: 'POST', json: { spec: { ...spec('held-1'), base: { artifact: 'busybox-base@2' } }, maxAttempts: 2 } });
    await ctl.exited(60_000);
    await ctl.start({ IBEX_CONTROLLER_FAILPOINTS: '', IBEX_IMAGE_BUILD_STALE_MS: '600000' });
    const refused = await ctl.api('/api/v1/artifacts/busybox-base@2', { method: 'DELETE' });
    assert.equal(refused.status, 409);
    assert.match(((await refused.json()) as { error: { message: string } }).error.message, new RegExp(`image build ${held.id} \\(vm-held-1, running\\)`));
    await ctl.restart({ IBEX_CONTROLLER_FAILPOINTS: '' });
    assert.equal((await finished(held.id)).status, 'succeeded');
    assert.equal((await ctl.api('/api/v1/artifacts/busybox-base@2', { method: 'DELETE' })).status, 204);
  });

  it('a controller killed half way through a build: the next one retries it; on its last attempt it is failed, never stuck', async () => {
    await ctl.restart({ IBEX_CONTROLLER_FAILPOINTS: 'image-build-mid-archive' });
    const retried = await ctl.json('/api/v1/image-builds', { method: 'POST', json: { spec: spec('crash-1'), maxAttempts: 2 } });
    const died = await ctl.exited(60_000);
    assert.equal(died.signal, 'SIGKILL');
    const row = (await sql.query('SELECT status, attempt FROM image_build WHERE id = $1', [retried.id])).rows[0];
    assert.deepEqual(row, { status: 'running', attempt: 1 }, 'the dead controller left it running');
    // The next controller's sweep finds the stale heartbeat and queues attempt 2.
    await ctl.start({ IBEX_CONTROLLER_FAILPOINTS: '' });
    const b = await finished(retried.id);
    assert.equal(b.status, 'succeeded', JSON.stringify(b));
    assert.equal(b.attempt, 2);

    await ctl.restart({ IBEX_CONTROLLER_FAILPOINTS: 'image-build-mid-archive' });
    const once = await ctl.json('/api/v1/image-builds', { method: 'POST', json: { spec: spec('crash-2'), maxAttempts: 1 } });
    await ctl.exited(60_000);
    await ctl.start({ IBEX_CONTROLLER_FAILPOINTS: '' });
    const f = await finished(once.id);
    assert.equal(f.status, 'failed');
    assert.match(f.error, /stopped during attempt 1 of 1; create the build again/);
  });
});
