import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FatalError } from '../common/errors.js';
import { fetchArtifact } from './artifact-fetcher.js';

const body = randomBytes(1024 * 1024 + 17);
const sha = createHash('sha256').update(body).digest('hex');

/** A Range-capable server whose behaviour each test scripts: `cutAfter` bytes, a stall, corruption. */
class TestServer {
  server!: Server;
  ranges: string[] = [];
  /** The next response sends this many bytes, then cuts the connection or stalls. */
  fault: { mode: 'cut' | 'stall'; after: number } | undefined;
  corrupt = false;
  auth: string | undefined;
  url = '';

  async start() {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((ok) => this.server.listen(0, '127.0.0.1', ok));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/blob`;
  }

  private handle(req: IncomingMessage, res: ServerResponse) {
    this.auth = req.headers.authorization;
    this.ranges.push(req.headers.range ?? 'none');
    const data = this.corrupt ? Buffer.concat([body.subarray(0, 10), Buffer.from('X'), body.subarray(11)]) : body;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m && req.headers['if-range'] === `"${sha}"` ? Number(m[1]) : 0;
    if (start >= data.length) return res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
    const slice = data.subarray(start);
    res.writeHead(start ? 206 : 200, { 'content-length': slice.length, ...(start ? { 'content-range': `bytes ${start}-${data.length - 1}/${data.length}` } : {}) });
    const fault = this.fault;
    this.fault = undefined;
    if (!fault) return res.end(slice);
    res.write(slice.subarray(0, fault.after), () => {
      if (fault.mode === 'cut') res.socket?.destroy();
    });
  }
}

describe('artifact fetcher', () => {
  const srv = new TestServer();
  let dir: string;
  before(async () => {
    await srv.start();
    dir = mkdtempSync(join(tmpdir(), 'ibex-fetch-'));
  });
  after(() => {
    srv.server.closeAllConnections();
    srv.server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('downloads, verifies and sends the given headers', async () => {
    srv.ranges = [];
    const dest = join(dir, 'a');
    const seen: number[] = [];
    const r = await fetchArtifact({ url: srv.url, sha256: sha, dest, headers: { authorization: 'Bearer ibxd_x' }, onProgress: (n) => seen.push(n) });
    assert.equal(r.size, body.length);
    assert.deepEqual(r.startedAt, [0]);
    assert.ok(readFileSync(dest).equals(body));
    assert.equal(srv.auth, 'Bearer ibxd_x');
    assert.equal(seen.at(-1), body.length);
    assert.ok(!existsSync(`${dest}.part`));
  });

  it('resumes from the byte where a cut connection stopped', async () => {
    srv.ranges = [];
    srv.fault = { mode: 'cut', after: 300_000 };
    const dest = join(dir, 'b');
    const r = await fetchArtifact({ url: srv.url, sha256: sha, dest });
    assert.ok(readFileSync(dest).equals(body));
    assert.equal(r.startedAt.length, 2);
    assert.ok(r.startedAt[1]! > 0 && r.startedAt[1]! <= 300_000, `resumed at ${r.startedAt[1]}`);
    assert.deepEqual(srv.ranges, ['none', `bytes=${r.startedAt[1]}-`]);
  });

  it('resumes a .part left by an earlier process', async () => {
    srv.ranges = [];
    const dest = join(dir, 'c');
    writeFileSync(`${dest}.part`, body.subarray(0, 123_456));
    const r = await fetchArtifact({ url: srv.url, sha256: sha, dest });
    assert.deepEqual(r.startedAt, [123_456]);
    assert.deepEqual(srv.ranges, ['bytes=123456-']);
    assert.ok(readFileSync(dest).equals(body));
  });

  it('refuses bytes that do not match, removing them, and refuses more than the size', async () => {
    srv.corrupt = true;
    const dest = join(dir, 'd');
    await assert.rejects(fetchArtifact({ url: srv.url, sha256: sha, dest }), (err: Error) => err instanceof FatalError && /expected [0-9a-f]{64}; nothing was changed/.test(err.message));
    assert.ok(!existsSync(dest) && !existsSync(`${dest}.part`));
    srv.corrupt = false;
    await assert.rejects(fetchArtifact({ url: srv.url, sha256: sha, dest, size: 1000 }), (err: Error) => err instanceof FatalError && /more than the 1000 allowed/.test(err.message));
    assert.ok(!existsSync(dest));
  });

  it('gives up on a stall after the timeout and resumes', async () => {
    srv.ranges = [];
    srv.fault = { mode: 'stall', after: 200_000 };
    const dest = join(dir, 'e');
    const t0 = Date.now();
    const r = await fetchArtifact({ url: srv.url, sha256: sha, dest, stallTimeoutMs: 500 });
    assert.ok(Date.now() - t0 >= 500);
    assert.equal(r.startedAt.length, 2);
    assert.ok(statSync(dest).size === body.length);
  });

  it('gives up after repeated failures, keeping the part to resume later', async () => {
    const dest = join(dir, 'f');
    // A port nothing listens on (taken, then freed).
    const probe = createServer();
    await new Promise<void>((ok) => probe.listen(0, '127.0.0.1', ok));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((ok) => probe.close(ok));
    await assert.rejects(fetchArtifact({ url: `http://127.0.0.1:${port}/nothing`, sha256: sha, dest, maxAttempts: 2 }), /failed 2 times in a row .*ECONNREFUSED/);
  });
});
