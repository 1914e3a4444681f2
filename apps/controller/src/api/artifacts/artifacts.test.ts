import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { auditRows, createApiToken, createDevice, expectError, expectStatus } from '../../testing/api-fixtures.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { enrollDevice } from '../../gateway/testing/fixtures.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every blob file under the store (staging included). */
function blobFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d, { withFileTypes: true })) n.isDirectory() ? walk(join(d, n.name)) : out.push(join(d, n.name).slice(dir.length + 1));
  };
  walk(dir);
  return out.sort();
}

describe('artifacts API', () => {
  let c: TestController;
  before(async () => (c = await startTestController({ env: { IBEX_ARTIFACT_MAX_BYTES: String(4 * 1024 * 1024) } })));
  after(() => c?.close());

  const upload = (q: string, body: Buffer, token?: string) =>
    c.api(`/api/v1/artifacts?${q}`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' }, ...(token ? { token } : {}) });

  it('stores an upload, shows its hash and size, and serves it whole and by Range', async () => {
    const bytes = randomBytes(300_000);
    const a = await expectStatus(await upload('name=rootfs&version=1.0&kind=generation-tarball&labels=os=alpine&architectures=x86_64,aarch64', bytes), 201);
    assert.equal(a.sha256, sha(bytes));
    assert.equal(a.size, bytes.length);
    assert.equal(a.ref, 'rootfs@1.0');
    assert.deepEqual(a.labels, { os: 'alpine' });
    assert.deepEqual(a.architectures, ['x86_64', 'aarch64']);
    assert.deepEqual((await expectStatus(await c.api('/api/v1/artifacts/rootfs@1.0'), 200)).id, a.id);
    assert.equal((await expectStatus(await c.api('/api/v1/artifacts?name=rootfs'), 200)).items.length, 1);
    assert.deepEqual(blobFiles(c.config.artifacts.dir), [`sha256/${a.sha256.slice(0, 2)}/${a.sha256}`]);

    const full = await c.api(`/api/v1/artifacts/${a.id}/download`);
    assert.equal(full.status, 200);
    assert.equal(full.headers.get('etag'), `"${a.sha256}"`);
    assert.equal(full.headers.get('accept-ranges'), 'bytes');
    assert.ok(Buffer.from(await full.arrayBuffer()).equals(bytes));

    const part = await c.api(`/api/v1/artifacts/${a.id}/download`, { headers: { range: 'bytes=1000-1999' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 1000-1999/${bytes.length}`);
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(1000, 2000)));
    const tail = await c.api(`/api/v1/artifacts/rootfs@1.0/download`, { headers: { range: 'bytes=299000-', 'if-range': `"${a.sha256}"` } });
    assert.equal(tail.status, 206);
    assert.ok(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(299_000)));
    const stale = await c.api(`/api/v1/artifacts/rootfs@1.0/download`, { headers: { range: 'bytes=299000-', 'if-range': '"other"' } });
    assert.equal(stale.status, 200, 'If-Range with another ETag sends everything');
    await stale.arrayBuffer();

    const bad = await c.api(`/api/v1/artifacts/${a.id}/download`, { headers: { range: `bytes=${bytes.length}-` } });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers.get('content-range'), `bytes */${bytes.length}`);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'range_not_satisfiable');

    const [row] = await auditRows(c, 'artifact.upload', a.id);
    assert.equal((row!.data as { sha256: string }).sha256, a.sha256);
  });

  it('refuses a body whose sha256 is not the expected one, and stores nothing', async () => {
    const before = blobFiles(c.config.artifacts.dir);
    const body = await expectError(await upload(`name=bad&version=1&sha256=${'0'.repeat(64)}`, randomBytes(1000)), 400, 'validation_failed');
    assert.equal(body.error.issues?.[0]?.path, 'sha256');
    assert.match(body.error.message, /not the expected 0{64}/);
    assert.deepEqual(blobFiles(c.config.artifacts.dir), before);
    await expectError(await c.api('/api/v1/artifacts/bad@1'), 404, 'not_found');
    const good = randomBytes(1000);
    await expectStatus(await upload(`name=good&version=1&sha256=${sha(good)}`, good), 201);
  });

  it('refuses bad metadata naming the field, a taken name@version, and a missing Content-Length', async () => {
    const body = await expectError(await upload('name=../x&version=1', randomBytes(10)), 400, 'validation_failed');
    assert.equal(body.error.issues?.[0]?.path, 'name');
    const kind = await expectError(await upload('name=x&version=1&kind=zip', randomBytes(10)), 400, 'validation_failed');
    assert.equal(kind.error.issues?.[0]?.path, 'kind');
    const taken = await expectError(await upload('name=rootfs&version=1.0', randomBytes(10)), 409, 'conflict');
    assert.match(taken.error.message, /rootfs@1\.0 already exists/);
    const chunked = await c.api('/api/v1/artifacts?name=chunked&version=1', {
      method: 'POST',
      body: new ReadableStream({ start: (ctl) => (ctl.enqueue(new Uint8Array(10)), ctl.close()) }),
      duplex: 'half',
    } as RequestInit);
    await expectError(chunked, 411, 'length_required');
  });

  it('answers 413 for a Content-Length over the limit before reading the body', async () => {
    // Announce 1 GiB and send nothing: the answer must come without the body.
    const url = new URL(`${c.baseUrl}/api/v1/artifacts?name=huge&version=1`);
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { authorization: `Bearer ${c.adminToken}`, 'content-type': 'application/octet-stream', 'content-length': String(1024 ** 3) } }, (r) => {
        let body = '';
        r.on('data', (d) => (body += d));
        r.on('end', () => resolve({ status: r.statusCode!, body }));
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(res.status, 413);
    assert.match(JSON.parse(res.body).error.message, /over the limit of 4\.0 MiB .*IBEX_ARTIFACT_MAX_BYTES/);
  });

  it('answers 413 before 100 Continue when the client asks first (Expect: 100-continue)', async () => {
    const url = new URL(`${c.baseUrl}/api/v1/artifacts?name=huge2&version=1`);
    let continued = false;
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { authorization: `Bearer ${c.adminToken}`, expect: '100-continue', 'content-length': String(1024 ** 3) } }, (r) => {
        r.resume();
        resolve(r.statusCode!);
      });
      req.on('continue', () => (continued = true));
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(status, 413);
    assert.equal(continued, false, 'no go-ahead was given for the body');
    // A small upload that asks first still gets its 100 Continue and goes through.
    const body = randomBytes(100);
    const ok = await new Promise<number>((resolve, reject) => {
      const req = request(new URL(`${c.baseUrl}/api/v1/artifacts?name=asked&version=1`), { method: 'POST', headers: { authorization: `Bearer ${c.adminToken}`, expect: '100-continue', 'content-length': String(body.length) } }, (r) => {
        r.resume();
        resolve(r.statusCode!);
      });
      req.on('continue', () => req.end(body));
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(ok, 201);
  });

  it('stores the same bytes once, also when uploaded concurrently under two names', async () => {
    const bytes = randomBytes(2 * 1024 * 1024);
    const [a, b] = await Promise.all([upload('name=twin-a&version=1', bytes), upload('name=twin-b&version=1', bytes)]);
    const va = await expectStatus(a, 201);
    const vb = await expectStatus(b, 201);
    assert.equal(va.sha256, vb.sha256);
    const files = blobFiles(c.config.artifacts.dir).filter((f) => f.includes(va.sha256));
    assert.deepEqual(files, [`sha256/${va.sha256.slice(0, 2)}/${va.sha256}`]);
    assert.equal(blobFiles(c.config.artifacts.dir).filter((f) => f.startsWith('staging/')).length, 0, 'no staging leftovers');
    // Deleting one keeps the bytes for the other; deleting both removes them.
    await expectStatus(await c.api('/api/v1/artifacts/twin-a@1', { method: 'DELETE' }), 204);
    assert.equal(statSync(join(c.config.artifacts.dir, files[0]!)).size, bytes.length);
    const again = await c.api('/api/v1/artifacts/twin-b@1/download');
    assert.equal(sha(Buffer.from(await again.arrayBuffer())), va.sha256);
    await expectStatus(await c.api('/api/v1/artifacts/twin-b@1', { method: 'DELETE' }), 204);
    assert.equal(blobFiles(c.config.artifacts.dir).filter((f) => f.includes(va.sha256)).length, 0);
    assert.equal((await auditRows(c, 'artifact.delete')).length, 2);
  });

  it('resolves a reference in job params, 400 naming the field for an unknown one, and refuses deleting while referenced', async () => {
    const d = await createDevice(c, 'art-dev');
    const img = await expectStatus(await upload('name=img&version=2&kind=generation-tarball', randomBytes(5000)), 201);
    const unknown = await expectError(
      await c.api(`/api/v1/devices/${d.id}/jobs`, { method: 'POST', json: { type: 'generations.upgrade', params: { from: { kind: 'tarball', artifact: 'img@3' } } } }),
      400,
      'validation_failed',
    );
    assert.equal(unknown.error.issues?.[0]?.path, 'params.from.artifact');
    assert.match(unknown.error.message, /img@3, which does not exist/);
    const forged = await expectError(
      await c.api(`/api/v1/devices/${d.id}/jobs`, { method: 'POST', json: { type: 'generations.upgrade', params: { from: { kind: 'tarball', artifact: { id: img.id, name: 'img', version: '2', sha256: '0'.repeat(64), size: 1 } } } } }),
      400,
      'validation_failed',
    );
    assert.equal(forged.error.issues?.[0]?.path, 'params.from.artifact');
    const job = await expectStatus(await c.api(`/api/v1/devices/${d.id}/jobs`, { method: 'POST', json: { type: 'generations.upgrade', params: { from: { kind: 'tarball', artifact: 'img@2' } } } }), 201);
    assert.deepEqual(job.params.from.artifact, { id: img.id, name: 'img', version: '2', sha256: img.sha256, size: 5000 });

    const refused = await expectError(await c.api('/api/v1/artifacts/img@2', { method: 'DELETE' }), 409, 'conflict');
    assert.match(refused.error.message, new RegExp(`job ${job.id} \\(generations\\.upgrade, queued\\) on device "art-dev"`));
    await c.prisma.job.update({ where: { id: job.id }, data: { status: 'cancelled' } });
    await expectStatus(await c.api('/api/v1/artifacts/img@2', { method: 'DELETE' }), 204);
  });

  it('resolves a reference in a desired state and refuses deleting it while it is current', async () => {
    const d = await createDevice(c, 'art-desired');
    const img = await expectStatus(await upload('name=desired-img&version=1', randomBytes(100)), 201);
    // No section names an artifact yet; the resolver works on any `artifact` key, so test it through the service.
    const { ArtifactRefs } = await import('../../artifacts/artifact-refs.service.js');
    const refs = c.app.get(ArtifactRefs);
    const resolved = await refs.resolve({ files: { entries: [{ artifact: 'desired-img@1' }] } }, 'spec');
    assert.equal((resolved.files.entries[0]!.artifact as unknown as { sha256: string }).sha256, img.sha256);
    await assert.rejects(refs.resolve({ x: { artifact: 'nope@1' } }, 'spec'), (err: Error & { issues?: Array<{ path: string }> }) => err.issues?.[0]?.path === 'spec.x.artifact');
    await c.prisma.device.update({ where: { id: d.id }, data: { desiredRevision: 1 } });
    await c.prisma.desiredRevision.create({ data: { deviceId: d.id, revision: 1, spec: resolved as object } });
    const refused = await expectError(await c.api('/api/v1/artifacts/desired-img@1', { method: 'DELETE' }), 409, 'conflict');
    assert.match(refused.error.message, /the desired state of device "art-desired" \(revision 1\)/);
  });

  it('lets a device download with its credential, and a viewer read but not upload', async () => {
    const img = await expectStatus(await upload('name=dev-dl&version=1', randomBytes(64)), 201);
    const dev = await enrollDevice(c, 'art-downloader');
    const r = await c.api(`/api/v1/artifacts/${img.id}/download`, { token: dev.credential });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    await expectError(await c.api('/api/v1/artifacts', { token: dev.credential }), 401, 'unauthenticated');
    await expectError(await c.api(`/api/v1/artifacts/${img.id}/download`, { token: 'ibxd_nope' }), 401, 'unauthenticated');
    const viewer = await createApiToken(c, 'viewer');
    await expectStatus(await c.api('/api/v1/artifacts', { token: viewer.token }), 200);
    await expectError(await upload('name=v&version=1', randomBytes(1), viewer.token), 403, 'forbidden');
  });
});
