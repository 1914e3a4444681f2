import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FatalError } from '../common/errors.js';

/** Bytes received so far and the total (when known). */
export type FetchProgress = (received: number, total: number | undefined) => void;

export interface FetchArtifactOptions {
  /** http(s) URL to GET; a Range request resumes a partial download. */
  url: string;
  /** Lowercase hex; the file is renamed to `dest` only when the bytes match. */
  sha256: string;
  /** Where the verified file goes. The partial download is kept at `<dest>.part` until then. */
  dest: string;
  /** Expected size (a controller artifact knows it): more bytes than this are refused. */
  size?: number;
  /** Refuse anything larger (default 16 GiB). */
  maxBytes?: number;
  /** Extra request headers, e.g. `authorization: Bearer ibxd_...` for the controller. */
  headers?: Record<string, string>;
  /** No byte for this long: the request is dropped and resumed (default 60 s). */
  stallTimeoutMs?: number;
  /** Requests in a row that bring no new byte before giving up (default 6; backoff 1, 2, 4... s). */
  maxAttempts?: number;
  onProgress?: FetchProgress;
  /** Log line per resumed request (`resuming at byte N`). */
  onLog?: (text: string) => void;
  signal?: AbortSignal;
}

export interface FetchedArtifact {
  file: string;
  size: number;
  /** Byte the download (re)started from at each request: [0] for a clean download, [0, N] after one resume. */
  startedAt: number[];
}

const DEFAULT_MAX = 16 * 1024 ** 3;

/**
 * Downloads `url` to `dest`, verified, resuming whatever is there. The one way the agent
 * fetches a file (generation images, chroot tarballs, VM images):
 *
 * - bytes go to `<dest>.part`; a dropped connection, a stall or a restart of the agent resumes
 *   with `Range: bytes=<size of .part>-` and `If-Range: "<sha256>"` (the controller's ETag);
 *   a server that answers 200 instead of 206 starts the file again;
 * - the sha256 is computed over the whole file as it arrives (a kept part is read once on
 *   resume) and checked before the rename, so nothing ever uses a byte that does not match; a mismatch
 *   removes the part (the next try starts from 0) and is a FatalError naming both hashes;
 * - size limits (`size`, `maxBytes`) are FatalErrors too; transient network errors are retried
 *   `maxAttempts` times in a row without progress, then thrown as plain Errors (retry later:
 *   the part stays).
 *
 * An existing `dest` with the right sha256 is returned at once.
 */
export async function fetchArtifact(o: FetchArtifactOptions): Promise<FetchedArtifact> {
  const want = o.sha256.toLowerCase();
  const max = Math.min(o.maxBytes ?? DEFAULT_MAX, o.size ?? Number.MAX_SAFE_INTEGER);
  const part = `${o.dest}.part`;
  await mkdir(dirname(o.dest), { recursive: true, mode: 0o700 });
  if ((await stat(o.dest).catch(() => null))?.isFile() && (await hashFile(o.dest, o.signal)).digest('hex') === want) {
    const size = (await stat(o.dest)).size;
    return { file: o.dest, size, startedAt: [] };
  }
  const startedAt: number[] = [];
  let failures = 0;
  let lastError = '';
  for (;;) {
    o.signal?.throwIfAborted();
    let offset = (await stat(part).catch(() => null))?.size ?? 0;
    if (offset > max) {
      await rm(part, { force: true });
      offset = 0;
    }
    const before = offset;
    try {
      const done = await oneRequest(o, part, offset, max, want, startedAt);
      if (done) return { file: o.dest, size: done, startedAt };
    } catch (err) {
      if (err instanceof FatalError || o.signal?.aborted) throw err;
      lastError = (err as Error).message;
    }
    const now = (await stat(part).catch(() => null))?.size ?? 0;
    failures = now > before ? 1 : failures + 1;
    if (failures >= (o.maxAttempts ?? 6)) {
      throw new Error(`downloading ${o.url} failed ${failures} times in a row (last: ${lastError}); ${now} bytes are kept in ${part} and the next try resumes there`);
    }
    o.onLog?.(`download of ${o.url} interrupted at byte ${now} (${lastError}); resuming`);
    await sleep(Math.min(1000 * 2 ** (failures - 1), 30_000), o.signal);
  }
}

/** One GET from `offset`. Returns the final size once the file is complete and verified; 0 when it should be resumed. */
async function oneRequest(o: FetchArtifactOptions, part: string, offset: number, max: number, want: string, startedAt: number[]): Promise<number> {
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(o.signal?.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const stallMs = o.stallTimeoutMs ?? 60_000;
  let stall: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(stall);
    stall = setTimeout(() => ctl.abort(new Error(`no data for ${stallMs / 1000} s`)), stallMs);
  };
  try {
    arm();
    const headers: Record<string, string> = { ...o.headers, ...(offset > 0 ? { range: `bytes=${offset}-`, 'if-range': `"${want}"` } : {}) };
    const res = await fetch(o.url, { headers, signal: ctl.signal }).catch((err: unknown) => {
      throw new Error(ctl.signal.aborted && !o.signal?.aborted ? String((ctl.signal.reason as Error)?.message ?? ctl.signal.reason) : describeFetchError(err));
    });
    if (res.status === 416 && offset > 0) {
      // The part is already as long as the file (or longer): verify what is there.
      await res.body?.cancel();
      return finish(part, o.dest, want, (await hashFile(part, o.signal)).digest('hex'));
    }
    if (res.status === 401 || res.status === 403 || res.status === 404) {
      const text = (await res.text().catch(() => '')).slice(0, 300);
      throw new FatalError(`downloading ${o.url}: HTTP ${res.status} ${res.statusText}${text ? `: ${text}` : ''}`);
    }
    if (res.status !== 200 && res.status !== 206) throw new Error(`HTTP ${res.status} ${res.statusText}`);
    if (!res.body) throw new Error('the response has no body');
    const resumed = res.status === 206;
    const start = resumed ? offset : 0;
    if (resumed) {
      const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (!m || Number(m[1]) !== offset) throw new Error(`the server answered range ${res.headers.get('content-range')} to bytes=${offset}-`);
    }
    const length = Number(res.headers.get('content-length') ?? NaN);
    const total = Number.isFinite(length) ? start + length : o.size;
    if (total !== undefined && total > max) {
      await res.body.cancel();
      throw new FatalError(`${o.url} is ${total} bytes, more than the ${max} allowed${o.size !== undefined ? ' (the size the controller recorded)' : ''}; nothing was used`);
    }
    startedAt.push(start);
    // Hash while the bytes arrive (the kept part is read once first), so the file is read only once.
    const hash = resumed ? await hashFile(part, o.signal) : createHash('sha256');
    const fh = await open(part, resumed ? 'a' : 'w', 0o600);
    let received = start;
    try {
      o.onProgress?.(received, total);
      const reader = res.body.getReader();
      // Writes are batched: many small network chunks, few large writes.
      const pending: Uint8Array[] = [];
      let pendingBytes = 0;
      const flush = async () => {
        if (pendingBytes === 0) return;
        const buf = Buffer.concat(pending, pendingBytes);
        pending.length = 0;
        pendingBytes = 0;
        await fh.write(buf);
      };
      for (;;) {
        const { done, value } = await reader.read().catch((err: unknown) => {
          throw new Error(ctl.signal.aborted && !o.signal?.aborted ? String((ctl.signal.reason as Error)?.message ?? ctl.signal.reason) : describeFetchError(err));
        }).catch(async (err: unknown) => {
          // What arrived before the cut is kept for the resume.
          await flush();
          throw err;
        });
        if (done) break;
        arm();
        received += value.length;
        if (received > max) throw new FatalError(`${o.url} sent more than the ${max} bytes allowed; nothing was used`);
        hash.update(value);
        pending.push(value);
        pendingBytes += value.length;
        if (pendingBytes >= 1 << 20) {
          await flush();
          o.onProgress?.(received, total);
        }
      }
      await flush();
      o.onProgress?.(received, total);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (total !== undefined && received < total) throw new Error(`the connection ended after ${received} of ${total} bytes`);
    return await finish(part, o.dest, want, hash.digest('hex'));
  } finally {
    clearTimeout(stall);
    o.signal?.removeEventListener('abort', onAbort);
  }
}

/** The complete part, hashed: renamed into place when it matches, removed when not. */
async function finish(part: string, dest: string, want: string, got: string): Promise<number> {
  if (got !== want) {
    await rm(part, { force: true });
    throw new FatalError(`the downloaded file has sha256 ${got}, expected ${want}; nothing was changed (the download was deleted; if the source's copy is damaged, upload it again)`);
  }
  await rename(part, dest);
  return (await stat(dest)).size;
}

/** A hash fed with the file, not finalized yet (more bytes may follow). */
async function hashFile(file: string, signal: AbortSignal | undefined): Promise<Hash> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) })) h.update(chunk as Buffer);
  return h;
}

/** fetch says only "fetch failed"; the reason (ECONNREFUSED, ECONNRESET...) is in its cause. */
function describeFetchError(err: unknown): string {
  const e = err as Error & { cause?: Error & { code?: string; errors?: Array<Error & { code?: string }> } };
  const c = e.cause?.errors?.[0] ?? e.cause;
  return c ? `${c.code ?? ''} ${c.message}`.trim() : e.message;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });
}
