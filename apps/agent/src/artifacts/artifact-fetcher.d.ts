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
/**
 * Downloads `url` to `dest`, verified, resuming whatever is there. The one way the agent
 * fetches a file (generation images, chroot tarballs, VM images):
 *
 * - bytes go to `<dest>.part`; a dropped connection, a stall or a restart of the agent resumes
 *   with `Range: bytes=<size of .part>-` and `If-Range: "<sha256>"` (the controller's ETag);
 *   a server that answers 200 instead of 206 starts the file again;
 * - the sha256 is computed over the whole file (the kept part is re-read on resume) and
 *   checked before the rename, so nothing ever uses a byte that does not match; a mismatch
 *   removes the part (the next try starts from 0) and is a FatalError naming both hashes;
 * - size limits (`size`, `maxBytes`) are FatalErrors too; transient network errors are retried
 *   `maxAttempts` times in a row without progress, then thrown as plain Errors (retry later:
 *   the part stays).
 *
 * An existing `dest` with the right sha256 is returned at once.
 */
export declare function fetchArtifact(o: FetchArtifactOptions): Promise<FetchedArtifact>;
