import type { Readable, Writable } from 'node:stream';

/**
 * Where artifact bytes live, addressed by their sha256. Callers see only this interface, so an
 * S3-compatible bucket can replace the filesystem without touching them.
 *
 * Writing is two-phase: `stage` streams the body aside (hashing it, never holding it whole in
 * memory) and `commit` makes it visible under its sha256. Until commit nothing can read it; a
 * crash in between leaves only a staging file that the next start removes.
 */
export interface BlobStore {
  stage(body: Readable, limits: StageLimits): Promise<StagedBlob>;
  /** Bytes `start..end` (inclusive) of a blob, or all of it. Throws BlobMissing. */
  open(sha256: string, range?: { start: number; end: number }): Promise<Readable>;
  /**
   * Writes bytes `start..end` (inclusive) of a blob, or all of it, to `out` (an HTTP response).
   * Throws BlobMissing before writing anything when there is no such blob.
   */
  send(sha256: string, out: Writable, range?: { start: number; end: number }): Promise<void>;
  /** Size of a stored blob, or null when there is none. */
  size(sha256: string): Promise<number | null>;
  delete(sha256: string): Promise<void>;
  /** Removes staging leftovers of a crashed process (called once at start). */
  sweep(): Promise<void>;
}

export interface StageLimits {
  /**
   * The body must be exactly this long (an upload's Content-Length); a number alone (`{ max }`)
   * bounds a body of unknown length that the controller itself produces (a built VM image).
   */
  size: number | { max: number };
  /** When given, a body whose sha256 differs is refused and never becomes visible. */
  sha256?: string;
  signal?: AbortSignal;
}

export interface StagedBlob {
  sha256: string;
  size: number;
  /** Makes the blob readable under its sha256 (a no-op when the same bytes are already stored). */
  commit(): Promise<void>;
  /** Drops the staged bytes. */
  discard(): Promise<void>;
}

/** The body was shorter or longer than announced, or its sha256 was not the expected one. */
export class BlobRejected extends Error {
  constructor(
    message: string,
    readonly field: 'Content-Length' | 'sha256',
  ) {
    super(message);
  }
}

export class BlobMissing extends Error {}

export const BLOB_STORE = Symbol('BLOB_STORE');
