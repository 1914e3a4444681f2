import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FatalError } from '../../common/errors.js';

/** Where an image comes from: a file on the device (under --root) or an http(s) URL. */
export type ArtifactSource = { path: string; url?: undefined } | { url: string; path?: undefined };

export async function sha256OfFile(file: string, signal?: AbortSignal): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h, { signal });
  return h.digest('hex');
}

/**
 * Makes the artifact available as a local file whose sha256 is `sha256`, BEFORE anything uses it:
 * a URL is downloaded to `downloadDir` (hashed while it streams), a local file is hashed in place.
 * A mismatch is a FatalError naming both hashes; a failed download leaves no file behind.
 * Returns the file to read and, for a download, the file to remove afterwards.
 */
export async function fetchVerified(
  src: { hostPath?: string; url?: string },
  sha256: string,
  downloadDir: string,
  name: string,
  signal?: AbortSignal,
): Promise<{ file: string; download: string | null }> {
  const want = sha256.toLowerCase();
  if (src.hostPath !== undefined) {
    let got: string;
    try {
      got = await sha256OfFile(src.hostPath, signal);
    } catch (err) {
      throw new FatalError(`artifact ${src.hostPath} cannot be read: ${(err as Error).message}`);
    }
    if (got !== want) throw new FatalError(`artifact ${src.hostPath} has sha256 ${got}, expected ${want}; nothing was changed`);
    return { file: src.hostPath, download: null };
  }
  const url = src.url!;
  await mkdir(downloadDir, { recursive: true, mode: 0o700 });
  const file = join(downloadDir, `${name}.part`);
  try {
    const res = await fetch(url, { signal });
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status} ${res.statusText}`);
    const h = createHash('sha256');
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
    body.on('data', (d: Buffer) => h.update(d));
    await pipeline(body, createWriteStream(file, { mode: 0o600 }), { signal });
    const got = h.digest('hex');
    if (got !== want) throw new FatalError(`artifact ${url} has sha256 ${got}, expected ${want}; nothing was changed`);
    return { file, download: file };
  } catch (err) {
    await rm(file, { force: true });
    if (err instanceof FatalError) throw err;
    throw new Error(`downloading ${url} failed: ${(err as Error).message}`, { cause: err });
  }
}
