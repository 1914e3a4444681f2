import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PassThrough, Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { ImageSpec } from '@ibex/spec';
import { cpioNewc } from './cpio-newc-writer.js';
import { type AssemblyProgress, assembleImage } from './image-assembly.js';
import type { ImageSourceResolver } from './image-source-resolver.js';

export interface ImageBuildProgress {
  step: string;
  detail?: string;
  /** 0..100 over the whole build; the archive writing is most of it. */
  percent: number;
}

export interface ImageBuildResult {
  /** sha256 of the gzip'd archive (what the kernel gets as initrd). */
  sha256: string;
  size: number;
  entries: number;
  warnings: string[];
}

export interface BuildOptions {
  onProgress?: (p: ImageBuildProgress) => void;
  /** gzip level (default 9). Same spec, same inputs, same level, same Node zlib: same bytes. */
  gzipLevel?: number;
}

/** Where the builder hands its output. */
export interface ImageOutputSink {
  /** Stores the image stream; resolves once it is durably stored. */
  put(image: Readable, meta: { name: string }): Promise<{ sha256: string; size: number; ref: string }>;
}

/**
 * Builds the spec's image and writes the gzip'd cpio newc archive to `out`. The archive streams:
 * file data is read from the build host only while its entry is written.
 */
export async function buildImage(spec: ImageSpec, resolver: ImageSourceResolver, out: Writable, opts: BuildOptions = {}): Promise<ImageBuildResult> {
  const report = opts.onProgress ?? (() => {});
  const assemblyProgress: AssemblyProgress = (step, detail) => report({ step, ...(detail ? { detail } : {}), percent: 5 });
  const { tree, warnings } = await assembleImage(spec, resolver, assemblyProgress);
  const entries = tree.entries();
  const total = entries.reduce((n, e) => n + (e.type === 'file' ? e.size : 0), 0) || 1;
  let done = 0;
  let lastPercent = -1;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      const percent = Math.min(99, 10 + Math.floor((done / total) * 89));
      if (percent !== lastPercent) {
        lastPercent = percent;
        report({ step: 'archive', detail: `${done} of ${total} bytes`, percent });
      }
      cb(null, chunk);
    },
  });
  const hash = createHash('sha256');
  let size = 0;
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  await pipeline(Readable.from(cpioNewc(entries)), counter, createGzip({ level: opts.gzipLevel ?? 9 }), hasher, out);
  const result = { sha256: hash.digest('hex'), size, entries: entries.length, warnings };
  report({ step: 'done', detail: `${size} bytes, sha256 ${result.sha256}`, percent: 100 });
  return result;
}

/**
 * Builds into a file: written to FILE.partial, fsync'd, then renamed, so a crash never leaves
 * a half image under the final name.
 */
export async function buildImageToFile(spec: ImageSpec, resolver: ImageSourceResolver, file: string, opts: BuildOptions = {}): Promise<ImageBuildResult> {
  await mkdir(dirname(file), { recursive: true });
  const partial = `${file}.partial`;
  try {
    const result = await buildImage(spec, resolver, createWriteStream(partial, { mode: 0o644 }), opts);
    await fsyncFile(partial);
    await rename(partial, file);
    return result;
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
}

/** fsync through a fresh descriptor (fsync is per inode): the write stream has closed its own. */
async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * The filesystem sink: images under a directory, by sha256. It is the seam the artifact store
 * (#8) replaces: a sink whose put() stores the stream as an artifact and returns its ref.
 */
export class FileImageSink implements ImageOutputSink {
  constructor(private readonly dir: string) {}

  async put(image: Readable, meta: { name: string }): Promise<{ sha256: string; size: number; ref: string }> {
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.incoming-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
    const hash = createHash('sha256');
    const tee = new PassThrough();
    tee.on('data', (c: Buffer) => hash.update(c));
    try {
      await pipeline(image, tee, createWriteStream(tmp, { mode: 0o644 }));
      await fsyncFile(tmp);
      const sha256 = hash.digest('hex');
      const ref = `${meta.name}-${sha256.slice(0, 16)}.cpio.gz`;
      await rename(tmp, join(this.dir, ref));
      return { sha256, size: (await stat(join(this.dir, ref))).size, ref };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** The stored image of a ref (for download). */
  open(ref: string): Readable {
    if (!/^[A-Za-z0-9._-]+\.cpio\.gz$/.test(ref)) throw new Error(`not an image ref: ${ref}`);
    return createReadStream(join(this.dir, ref));
  }
}
