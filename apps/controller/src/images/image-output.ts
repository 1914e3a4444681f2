import type { Readable } from 'node:stream';
import { FileImageSink } from '@ibex/image';
import { systemActor } from '../audit/audit.service.js';
import { Conflict, NotFound } from '../common/errors.js';
import type { ArtifactsService } from '../artifacts/artifacts.service.js';

/**
 * Where built images go: the artifact store (each build's image becomes an artifact of kind
 * `vm-image`, name = the spec's name, version = the build id). `open` streams a stored image back
 * for the download route.
 */
export interface ControllerImageSink {
  /** Stores the image stream; resolves once it is durably stored. `ref` goes into the build's outputRef. */
  put(image: Readable, meta: { name: string; buildId: string; createdBy: string | null }): Promise<{ sha256: string; size: number; ref: string }>;
  open(ref: string): Promise<Readable>;
}

export const IMAGE_SINK = Symbol('IMAGE_SINK');

const ARTIFACT_REF = 'artifact:';
/** The artifact name@version of a build's image when it is in the artifact store, else null. */
export const imageArtifactOf = (b: { name: string; id: string; outputRef: string | null }) => (b.outputRef?.startsWith(ARTIFACT_REF) ? `${b.name}@${b.id}` : null);

export class ArtifactImageSink implements ControllerImageSink {
  constructor(
    private readonly artifacts: ArtifactsService,
    /** Images built before the artifact store (outputRef `<name>-<sha>.cpio.gz` under IBEX_IMAGE_DIR) stay downloadable. */
    private readonly legacy: FileImageSink,
  ) {}

  async put(image: Readable, meta: { name: string; buildId: string; createdBy: string | null }): Promise<{ sha256: string; size: number; ref: string }> {
    const version = meta.buildId;
    const stored = await this.artifacts
      .store({ actor: systemActor('image-builds'), createdBy: meta.createdBy }, { name: meta.name, version, kind: 'vm-image', contentType: 'application/gzip', labels: { 'ibex.image-build': meta.buildId }, architectures: ['x86_64'] }, image)
      .catch(async (err: unknown) => {
        // A replica that stored the image and stopped before recording the build: the next attempt
        // builds the same bytes (builds are deterministic) and finds them stored already.
        if (!(err instanceof Conflict)) throw err;
        image.resume();
        return this.artifacts.find(`${meta.name}@${version}`);
      });
    return { sha256: stored.sha256, size: Number(stored.size), ref: `${ARTIFACT_REF}${stored.id}` };
  }

  async open(ref: string): Promise<Readable> {
    if (!ref.startsWith(ARTIFACT_REF)) return this.legacy.open(ref);
    const blob = await this.artifacts.blob(ref.slice(ARTIFACT_REF.length)).catch((err: unknown) => {
      throw err instanceof NotFound ? new Conflict(`the image's artifact ${ref.slice(ARTIFACT_REF.length)} was deleted; build the image again`) : err;
    });
    return blob.open();
  }
}
