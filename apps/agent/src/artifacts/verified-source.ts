import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ResolvedArtifact } from '@ibex/spec';
import type { ArtifactEndpoint } from './artifact-endpoint.js';
import { fetchArtifact } from './artifact-fetcher.js';
import { FatalError } from '../common/errors.js';

/** Percent of the job and a message (the job runner's progress callback). */
export type Progress = (percent: number, message: string) => void;

export async function sha256OfFile(file: string, signal?: AbortSignal): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h, { signal });
  return h.digest('hex');
}

/** Where the bytes come from: a file on the host, any http(s) URL, or an artifact of the controller. */
export type VerifiedSource = { hostPath: string } | { url: string } | { artifact: ResolvedArtifact; endpoint: ArtifactEndpoint | undefined };

const MIB = 1024 * 1024;

/**
 * Makes the artifact available as a local file whose sha256 is `sha256`, BEFORE anything uses it:
 * a URL or controller artifact is downloaded into `downloadDir` by the shared fetcher
 * (artifacts/artifact-fetcher.ts: resumes after a cut or a restart, size limit, stall timeout),
 * a local file is hashed in place. A mismatch is a FatalError naming both hashes.
 * Returns the file to read and, for a download, the file to remove afterwards.
 */
export async function fetchVerified(src: VerifiedSource, sha256: string, downloadDir: string, progress: Progress, signal?: AbortSignal): Promise<{ file: string; download: string | null }> {
  const want = sha256.toLowerCase();
  if ('hostPath' in src) {
    let got: string;
    try {
      got = await sha256OfFile(src.hostPath, signal);
    } catch (err) {
      throw new FatalError(`artifact ${src.hostPath} cannot be read: ${(err as Error).message}`);
    }
    if (got !== want) throw new FatalError(`artifact ${src.hostPath} has sha256 ${got}, expected ${want}; nothing was changed`);
    return { file: src.hostPath, download: null };
  }
  const req = 'url' in src ? { url: src.url, headers: {} } : (src.endpoint ?? missingEndpoint(src.artifact)).request(src.artifact);
  const what = 'url' in src ? src.url : `artifact ${src.artifact.name}@${src.artifact.version}`;
  // Named by sha256, so a later job for the same bytes resumes what an interrupted one left.
  const dest = join(downloadDir, want);
  let shown = -1;
  let jobPc = 2;
  const r = await fetchArtifact({
    url: req.url,
    headers: req.headers,
    sha256: want,
    dest,
    ...('artifact' in src ? { size: src.artifact.size } : {}),
    ...(signal ? { signal } : {}),
    onLog: (text) => progress(jobPc, text),
    onProgress: (got, total) => {
      // Percent steps of the download map to 2-19 % of the job (the rest is unpacking and switching).
      const pc = total ? Math.floor((got / total) * 100) : Math.floor(got / (64 * MIB));
      if (pc === shown) return;
      shown = pc;
      jobPc = 2 + Math.floor((total ? got / total : 0) * 17);
      progress(jobPc, `downloading ${what}: ${(got / MIB).toFixed(1)}${total ? ` of ${(total / MIB).toFixed(1)}` : ''} MiB`);
    },
  });
  if (r.startedAt.some((b) => b > 0)) progress(19, `downloaded ${what} (resumed at byte ${r.startedAt.filter((b) => b > 0).join(', ')}) and verified its sha256`);
  return { file: r.file, download: r.file };
}

function missingEndpoint(a: ResolvedArtifact): never {
  throw new FatalError(`artifact ${a.name}@${a.version} can only be downloaded from the controller, and this agent has no connection to one`);
}
