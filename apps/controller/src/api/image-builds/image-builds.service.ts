import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Readable } from 'node:stream';
import { ArtifactRefs } from '../../artifacts/artifact-refs.service.js';
import { AuditService } from '../../audit/audit.service.js';
import { Conflict, NotFound } from '../../common/errors.js';
import type { ImageBuild } from '../../generated/prisma/client.js';
import { ImageBuildRunner } from '../../images/image-build-runner.service.js';
import { type ControllerImageSink, IMAGE_SINK, imageArtifactOf } from '../../images/image-output.js';
import { PrismaService } from '../../prisma/prisma.service.js';
import type { Caller } from '../http/request-context.js';
import { iso, isUuid } from '../http/schemas.js';
import type { CreateImageBuildBody, ImageBuildView } from './image-builds.dto.js';

function toView(b: ImageBuild): ImageBuildView {
  return {
    id: b.id,
    name: b.name,
    status: b.status,
    attempt: b.attempt,
    maxAttempts: b.maxAttempts,
    progress: { percent: b.progressPercent, message: b.progressMessage },
    error: b.error,
    warnings: Array.isArray(b.warnings) ? (b.warnings as string[]) : [],
    sha256: b.sha256,
    size: b.size === null ? null : Number(b.size),
    entries: b.entries,
    downloadUrl: b.status === 'succeeded' ? `/api/v1/image-builds/${b.id}/image` : null,
    artifact: b.status === 'succeeded' ? imageArtifactOf(b) : null,
    createdBy: b.createdBy,
    createdAt: iso(b.createdAt),
    startedAt: iso(b.startedAt),
    finishedAt: iso(b.finishedAt),
  };
}

/** VM image builds: create (queued for the runner), follow, download (docs/images.md). */
@Injectable()
export class ImageBuildsService {
  private readonly log = new Logger('ImageBuilds');

  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly runner: ImageBuildRunner,
    @Inject(IMAGE_SINK) private readonly sink: ControllerImageSink,
    private readonly refs: ArtifactRefs,
  ) {}

  async create(caller: Caller, body: CreateImageBuildBody): Promise<ImageBuildView> {
    // An artifact the spec names must exist now (400 naming the field, e.g. spec.base.artifact), not fail the build later.
    // The spec keeps the reference as written; the image-builds referrer holds it until the build is done.
    await this.refs.resolve(body.spec, 'spec');
    const row = await this.prisma.$transaction(async (tx) => {
      const b = await tx.imageBuild.create({ data: { name: body.spec.name, spec: body.spec as object, maxAttempts: body.maxAttempts, createdBy: caller.actor.id } });
      // The token is a secret: the audit entry says an agent is included, never the token.
      await this.audit.record(
        { actor: caller.actor, action: 'image_build.create', target: { type: 'image_build', id: b.id }, data: { name: b.name, hostname: body.spec.hostname, agent: !!body.spec.agent }, requestId: caller.requestId },
        tx,
      );
      return b;
    });
    // After the commit; if Redis refuses now, the runner's sweep queues it later.
    await this.runner.enqueue(row.id, 1).catch((err: Error) => this.log.warn(`image build ${row.id}: not queued yet (${err.message}); the sweep will queue it`));
    return toView(row);
  }

  async get(id: string): Promise<ImageBuildView> {
    return toView(await this.find(id));
  }

  /** The image of a succeeded build, streamed from the sink. */
  async download(id: string): Promise<{ stream: Readable; filename: string; size: number; sha256: string }> {
    const b = await this.find(id);
    if (b.status !== 'succeeded' || !b.outputRef || !b.sha256) throw new Conflict(`image build ${id} is ${b.status}${b.status === 'running' ? ` (${b.progressPercent}%)` : ''}, not succeeded: there is no image to download${b.status === 'failed' ? '' : ' yet; poll GET /api/v1/image-builds/' + id}`);
    return { stream: await this.sink.open(b.outputRef), filename: `${b.name}.cpio.gz`, size: Number(b.size), sha256: b.sha256 };
  }

  private async find(id: string): Promise<ImageBuild> {
    const b = isUuid(id) ? await this.prisma.imageBuild.findUnique({ where: { id } }) : null;
    if (!b) throw new NotFound(`image build ${id} not found`);
    return b;
  }
}
