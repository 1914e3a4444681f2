import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { BlobRejected } from './blob-store.port.js';
import { FsBlobStore } from './fs-blob-store.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('FsBlobStore (a real directory)', () => {
  let dir: string;
  let store: FsBlobStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ibex-blobs-'));
    store = new FsBlobStore(dir);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const put = async (bytes: Buffer, limits: Partial<Parameters<FsBlobStore['stage']>[1]> = {}) => {
    const staged = await store.stage(Readable.from([bytes]), { size: bytes.length, ...limits });
    await staged.commit();
    return staged;
  };

  it('stores a blob under its sha256 and leaves no staging file', async () => {
    const bytes = Buffer.from('hello blobs\n');
    const s = await put(bytes);
    assert.equal(s.sha256, sha(bytes));
    assert.deepEqual(await readFile(store.pathOf(s.sha256)), bytes);
    assert.deepEqual(await readdir(join(dir, 'staging')), []);
  });

  it('a stored copy damaged on disk (cut short, or same length but other bytes) is replaced by the next upload of the right bytes', async () => {
    const bytes = Buffer.alloc(300_000, 7);
    const { sha256 } = await put(bytes);
    await truncate(store.pathOf(sha256), 1000);
    await put(bytes);
    assert.deepEqual(await readFile(store.pathOf(sha256)), bytes, 'the short copy was replaced');
    await writeFile(store.pathOf(sha256), Buffer.alloc(300_000, 9));
    await put(bytes);
    assert.equal(sha(await readFile(store.pathOf(sha256))), sha256, 'the rotted copy was replaced');
  });

  it('refuses a body whose sha256 or length is not the announced one, and stores nothing', async () => {
    const bytes = Buffer.from('some other bytes');
    await assert.rejects(store.stage(Readable.from([bytes]), { size: bytes.length, sha256: '0'.repeat(64) }), (e: Error) => e instanceof BlobRejected && /not the expected/.test(e.message));
    await assert.rejects(store.stage(Readable.from([bytes]), { size: bytes.length + 5 }), (e: Error) => e instanceof BlobRejected && /ended after/.test(e.message));
    assert.equal(await store.size(sha(bytes)), null);
    assert.deepEqual(await readdir(join(dir, 'staging')), []);
  });
});
