import { Injectable } from '@nestjs/common';

/** The artifact a referrer is asked about. */
export interface ReferencedArtifact {
  id: string;
  name: string;
  version: string;
  sha256: string;
}

/**
 * Something that can hold on to artifacts (desired-state revisions, jobs, later rollouts).
 * `referrersOf` names what still uses the artifact, e.g. `job 5f0c... (generations.upgrade,
 * queued) on device "edge-1"`; an empty list lets the artifact be deleted.
 */
export interface ArtifactReferrerSource {
  /** Short name for logs: `desired-state`, `jobs`, `rollouts`. */
  readonly kind: string;
  referrersOf(artifact: ReferencedArtifact): Promise<string[]>;
}

/**
 * The registry a delete asks before it removes an artifact. A module that keeps artifact
 * references injects this and calls `register(source)` in its constructor or onModuleInit;
 * the artifacts code never needs to know it exists (docs/artifacts.md, "Referrers").
 */
@Injectable()
export class ArtifactReferrers {
  private readonly sources: ArtifactReferrerSource[] = [];

  register(source: ArtifactReferrerSource): void {
    if (this.sources.some((s) => s.kind === source.kind)) throw new Error(`an artifact referrer source "${source.kind}" is already registered`);
    this.sources.push(source);
  }

  kinds(): string[] {
    return this.sources.map((s) => s.kind);
  }

  /** Every referrer of every source, at most `limit` (enough to name them in an error). */
  async referrersOf(artifact: ReferencedArtifact, limit = 5): Promise<string[]> {
    const out: string[] = [];
    for (const s of this.sources) {
      out.push(...(await s.referrersOf(artifact)));
      if (out.length >= limit) break;
    }
    return out.slice(0, limit);
  }
}
