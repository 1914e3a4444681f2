import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ImageSource } from '@ibex/spec';

/** Where the bytes of a source are on the build host once resolved. */
export interface ResolvedSource {
  path: string;
  directory: boolean;
}

/**
 * Turns the spec's sources (`{ artifact }`, `{ path, sha256? }`, `{ url, sha256 }`) into host
 * paths. The controller passes an `artifacts` lookup backed by its artifact store; an agent on a
 * hypervisor host has none and builds from paths and URLs.
 */
export interface ImageSourceResolver {
  resolve(source: ImageSource, field: string): Promise<ResolvedSource>;
  /** The host path of a build-host path the spec names (kernel.modulesDir): under the agent's --root. */
  hostPath(path: string, field?: string): string;
  /** Removes what resolving downloaded. */
  close(): Promise<void>;
}

/** Thrown for a source that cannot be used; `field` names the spec field (e.g. `packages[2]`). */
export class ImageSourceError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'ImageSourceError';
  }
}

export async function sha256OfFile(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

export interface LocalResolverOptions {
  /**
   * Resolves `{ artifact }` (the controller's artifact store) to its sha256 and a way to read its
   * bytes; they are copied aside and verified like a download. Absent: refused.
   */
  artifacts?: (ref: string) => Promise<{ sha256: string; open: () => Promise<Readable> }>;
  /** How long a download may take (default 10 min). */
  fetchTimeoutMs?: number;
  /** Paths in the spec are under this directory (the agent's --root; default /). */
  root?: string;
  /** Why `{ path }` sources (and kernel.modulesDir) are refused here, if they are (the controller without IBEX_IMAGE_SOURCE_DIR). */
  refusePaths?: string;
}

export class LocalImageSourceResolver implements ImageSourceResolver {
  private tmp: string | undefined;
  private downloads = 0;

  constructor(private readonly opts: LocalResolverOptions = {}) {}

  async resolve(source: ImageSource, field: string): Promise<ResolvedSource> {
    if ('artifact' in source) {
      if (!this.opts.artifacts) throw new ImageSourceError(field, `the artifact ${source.artifact} cannot be fetched here (only the controller resolves artifacts); give { path } or { url, sha256 } instead`);
      let a: { sha256: string; open: () => Promise<Readable> };
      try {
        a = await this.opts.artifacts(source.artifact);
      } catch (err) {
        throw new ImageSourceError(field, (err as Error).message);
      }
      const dest = await this.downloadPath();
      await pipeline(await a.open(), createWriteStream(dest, { mode: 0o600 }));
      return this.checked({ path: dest, sha256: a.sha256 }, field, `artifact ${source.artifact}`);
    }
    if ('path' in source) {
      if (this.opts.refusePaths) throw new ImageSourceError(field, this.opts.refusePaths);
      return this.checked({ ...source, path: this.hostPath(source.path) }, field, source.path);
    }
    const dest = await this.downloadPath();
    let res: Response;
    try {
      res = await fetch(source.url, { signal: AbortSignal.timeout(this.opts.fetchTimeoutMs ?? 600_000) });
    } catch (err) {
      throw new ImageSourceError(field, `could not download ${source.url} (${(err as Error).message}); check the URL and that the build host reaches it`);
    }
    if (!res.ok || !res.body) throw new ImageSourceError(field, `downloading ${source.url} answered HTTP ${res.status}; check the URL`);
    await pipeline(Readable.fromWeb(res.body as never), createWriteStream(dest, { mode: 0o600 }));
    return this.checked({ path: dest, sha256: source.sha256 }, field, source.url);
  }

  private async checked(src: { path: string; sha256?: string }, field: string, shown = src.path): Promise<ResolvedSource> {
    let st;
    try {
      st = await stat(src.path);
    } catch {
      throw new ImageSourceError(field, `${shown} does not exist on the build host`);
    }
    if (st.isDirectory()) {
      if (src.sha256) throw new ImageSourceError(field, `${shown} is a directory, which has no sha256: leave sha256 out, or give an archive`);
      return { path: src.path, directory: true };
    }
    if (src.sha256) {
      const got = await sha256OfFile(src.path);
      if (got !== src.sha256) throw new ImageSourceError(field, `${shown} has sha256 ${got}, not the ${src.sha256} the spec names; fix the spec or the file`);
    }
    return { path: src.path, directory: false };
  }

  /** A fresh file in this build's scratch directory (removed by close()). */
  private async downloadPath(): Promise<string> {
    this.tmp ??= await mkdtemp(join(tmpdir(), 'ibex-image-src-'));
    return join(this.tmp, `download-${this.downloads++}`);
  }

  hostPath(path: string, field = 'path'): string {
    if (this.opts.refusePaths) throw new ImageSourceError(field, this.opts.refusePaths);
    // The schema refuses ".." in build-host paths; a symlink inside the root may still point out
    // of it, which is the operator's own tree (the agent reads it, never writes it).
    return this.opts.root && this.opts.root !== '/' ? join(this.opts.root, path) : path;
  }

  async close(): Promise<void> {
    if (this.tmp) await rm(this.tmp, { recursive: true, force: true });
    this.tmp = undefined;
  }
}
