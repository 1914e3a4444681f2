import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlobMissing, BlobRejected, type BlobStore, type StagedBlob, type StageLimits } from './blob-store.port.js';

const SHA256 = /^[0-9a-f]{64}$/;
const SEND_CHUNK = 256 * 1024;
const SEND_BUFFERS = 4;

/**
 * Blobs as files: `<dir>/sha256/<first two hex digits>/<sha256>`, staged in `<dir>/staging/`.
 * A blob is written to a staging file, fsynced, then renamed into place and the directory
 * fsynced, so a crash never leaves a visible half blob. Two uploads of the same bytes stage
 * separately and each commit renames over the blob: stored once, and a damaged stored copy is
 * replaced by the verified new one (readers keep their open file).
 */
export class FsBlobStore implements BlobStore {
  private readonly staging: string;
  private readonly blobs: string;

  constructor(readonly dir: string) {
    this.staging = join(dir, 'staging');
    this.blobs = join(dir, 'sha256');
  }

  pathOf(sha256: string): string {
    if (!SHA256.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return join(this.blobs, sha256.slice(0, 2), sha256);
  }

  async stage(body: Readable, limits: StageLimits): Promise<StagedBlob> {
    await mkdir(this.staging, { recursive: true, mode: 0o700 });
    const tmp = join(this.staging, `${Date.now()}-${randomBytes(8).toString('hex')}.part`);
    const hash = createHash('sha256');
    let size = 0;
    const count = new Transform({
      highWaterMark: 1 << 20,
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (typeof limits.size === 'number' ? size > limits.size : size > limits.size.max)
          return done(new BlobRejected(typeof limits.size === 'number' ? `the body is longer than its Content-Length (${limits.size} bytes)` : `the body is longer than the limit of ${limits.size.max} bytes`, 'Content-Length'));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    try {
      const out = createWriteStream(tmp, { mode: 0o600, flags: 'wx', highWaterMark: 1 << 20 });
      await pipeline(body, count, out, limits.signal ? { signal: limits.signal } : {});
      if (typeof limits.size === 'number' && size !== limits.size) throw new BlobRejected(`the body ended after ${size} of the ${limits.size} bytes its Content-Length announced`, 'Content-Length');
      const sha256 = hash.digest('hex');
      if (limits.sha256 !== undefined && limits.sha256 !== sha256) {
        throw new BlobRejected(`the body has sha256 ${sha256}, not the expected ${limits.sha256}; nothing was stored`, 'sha256');
      }
      await fsync(tmp);
      return {
        sha256,
        size,
        commit: () => this.commit(tmp, sha256),
        discard: () => rm(tmp, { force: true }),
      };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  private async commit(tmp: string, sha256: string): Promise<void> {
    const final = this.pathOf(sha256);
    const dir = join(this.blobs, sha256.slice(0, 2));
    // Always over whatever is there: the staged bytes were just hashed, a stored file may have
    // rotted or been cut short since, and an upload of the same bytes is how it gets repaired.
    // Readers of the old file keep their open descriptor.
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await rename(tmp, final);
    await fsync(dir);
  }

  async open(sha256: string, range?: { start: number; end: number }): Promise<Readable> {
    const path = this.pathOf(sha256);
    // Open first so a missing blob is an error here, not a stream error after the headers went out.
    const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? new BlobMissing(`blob ${sha256} is not in ${this.blobs}`) : err;
    });
    return fh.createReadStream({ highWaterMark: 1 << 20, ...(range ? { start: range.start, end: range.end } : {}) });
  }

  /**
   * Reads into a few buffers it reuses once `out` has taken each one (its write callback), so a
   * download allocates nothing per chunk: with a fresh buffer per read, as a read stream makes,
   * the garbage collector of a big controller heap cost more than the copying.
   */
  async send(sha256: string, out: Writable, range?: { start: number; end: number }): Promise<void> {
    const fh = await open(this.pathOf(sha256), 'r').catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? new BlobMissing(`blob ${sha256} is not in ${this.blobs}`) : err;
    });
    try {
      const end = range ? range.end + 1 : (await fh.stat()).size;
      let pos = range?.start ?? 0;
      const free = Array.from({ length: SEND_BUFFERS }, () => Buffer.allocUnsafeSlow(SEND_CHUNK));
      const inFlight = new Set<Promise<void>>();
      let failed: Error | undefined;
      const closed = new Promise<void>((resolve) => out.once('close', resolve));
      while (pos < end && !failed && !out.destroyed) {
        const buf = free.pop() ?? (await Promise.race([...inFlight, closed]), free.pop());
        if (!buf) break;
        const { bytesRead } = await fh.read(buf, 0, Math.min(SEND_CHUNK, end - pos), pos);
        if (bytesRead === 0) throw new Error(`blob ${sha256} is shorter than expected (ended at byte ${pos})`);
        pos += bytesRead;
        const p: Promise<void> = new Promise<void>((resolve) => {
          out.write(bytesRead === SEND_CHUNK ? buf : buf.subarray(0, bytesRead), (err) => {
            if (err) failed = err;
            free.push(buf);
            inFlight.delete(p);
            resolve();
          });
        });
        inFlight.add(p);
      }
      await Promise.race([Promise.all(inFlight), closed]);
    } finally {
      await fh.close();
    }
  }

  async size(sha256: string): Promise<number | null> {
    const st = await stat(this.pathOf(sha256)).catch(() => null);
    return st?.isFile() ? st.size : null;
  }

  async delete(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }

  async sweep(): Promise<void> {
    const names = await readdir(this.staging).catch(() => [] as string[]);
    // Only leftovers older than an hour: another replica sharing the directory may be uploading.
    const cutoff = Date.now() - 3600_000;
    for (const n of names) {
      const st = await stat(join(this.staging, n)).catch(() => null);
      if (st && st.mtimeMs < cutoff) await rm(join(this.staging, n), { force: true });
    }
  }
}

async function fsync(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
