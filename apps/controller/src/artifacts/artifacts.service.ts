import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { Readable, Writable } from 'node:stream';
import { type ArtifactKind, parseArtifactRef } from '@ibex/spec';
import { type Actor, AuditService } from '../audit/audit.service.js';
import { Conflict, LengthRequired, NotFound, PayloadTooLarge, ValidationFailed } from '../common/errors.js';
import { CONFIG, type Config } from '../config/config.js';
import { type Artifact, Prisma } from '../generated/prisma/client.js';
import { PrismaService } from '../prisma/prisma.service.js';
import type { Caller } from '../api/http/request-context.js';
import { ArtifactReferrers } from './artifact-referrers.service.js';
import { BLOB_STORE, BlobMissing, BlobRejected, type BlobStore } from './blob-store.port.js';

export interface UploadMeta {
  name: string;
  version: string;
  kind: ArtifactKind;
  sha256?: string;
  contentType: string;
  labels: Record<string, string>;
  architectures: string[];
}

/** An artifact row and how to read its bytes. */
export interface ArtifactBlob {
  artifact: Artifact;
  size: number;
  open(range?: { start: number; end: number }): Promise<Readable>;
  /** Writes the bytes to `out` without a buffer per chunk (downloads). */
  send(out: Writable, range?: { start: number; end: number }): Promise<void>;
}

const HUMAN = (n: number) => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`);

/**
 * Artifacts: metadata in Postgres, bytes in the blob store. An upload streams to a staging
 * blob and only becomes an artifact (row + visible blob, in one transaction under a lock on
 * its sha256) once every byte was written, synced and checked. A delete asks every registered
 * referrer first; the blob goes only when no other artifact has the same bytes.
 */
@Injectable()
export class ArtifactsService implements OnModuleInit {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly referrers: ArtifactReferrers,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
    @Inject(CONFIG) private readonly config: Config,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.blobs.sweep();
  }

  /**
   * Everything that can be refused without reading the body: Content-Length missing or over
   * the limit, name@version taken. Called before `upload` touches the stream.
   */
  async precheck(meta: UploadMeta, contentLength: string | undefined): Promise<number> {
    if (contentLength === undefined || !/^\d{1,16}$/.test(contentLength)) {
      throw new LengthRequired('an artifact upload needs a Content-Length header (the exact size in bytes); send the file as the raw request body, not chunked');
    }
    const size = Number(contentLength);
    const max = this.config.artifacts.maxBytes;
    if (size > max) {
      throw new PayloadTooLarge(`the upload is ${HUMAN(size)} (${size} bytes), over the limit of ${HUMAN(max)} (${max} bytes, IBEX_ARTIFACT_MAX_BYTES); raise the limit or upload a smaller file`);
    }
    const taken = await this.prisma.artifact.findUnique({ where: { name_version: { name: meta.name, version: meta.version } } });
    if (taken) throw new Conflict(`artifact ${meta.name}@${meta.version} already exists (id ${taken.id}, sha256 ${taken.sha256}); upload it under a new version`);
    return size;
  }

  async upload(caller: Caller, meta: UploadMeta, body: Readable, size: number, signal?: AbortSignal): Promise<Artifact> {
    return this.stageAndCommit({ actor: caller.actor, createdBy: caller.actor.id, requestId: caller.requestId }, meta, body, size, signal);
  }

  /**
   * An artifact the controller itself produces (a built VM image): the same staging, lock,
   * transaction and audit as an upload, for a stream of unknown length bounded by
   * IBEX_ARTIFACT_MAX_BYTES. `createdBy` is the API token on whose behalf it was made.
   */
  async store(by: { actor: Actor; createdBy: string | null }, meta: UploadMeta, body: Readable, signal?: AbortSignal): Promise<Artifact> {
    return this.stageAndCommit(by, meta, body, { max: this.config.artifacts.maxBytes }, signal);
  }

  private async stageAndCommit(by: { actor: Actor; createdBy: string | null; requestId?: string }, meta: UploadMeta, body: Readable, size: number | { max: number }, signal?: AbortSignal): Promise<Artifact> {
    const staged = await this.blobs.stage(body, { size, ...(meta.sha256 ? { sha256: meta.sha256 } : {}), ...(signal ? { signal } : {}) }).catch((err: unknown) => {
      if (err instanceof BlobRejected) throw new ValidationFailed(`upload refused: ${err.message}`, [{ path: err.field, message: err.message }]);
      throw err;
    });
    try {
      return await this.prisma.$transaction(
        async (tx) => {
          await lockBytes(tx, staged.sha256);
          await staged.commit();
          const row = await tx.artifact.create({
            data: {
              name: meta.name,
              version: meta.version,
              kind: meta.kind,
              sha256: staged.sha256,
              size: BigInt(staged.size),
              contentType: meta.contentType,
              labels: meta.labels,
              architectures: meta.architectures,
              createdBy: by.createdBy,
            },
          });
          await this.audit.record(
            { actor: by.actor, action: 'artifact.upload', target: { type: 'artifact', id: row.id }, data: { name: row.name, version: row.version, kind: row.kind, sha256: row.sha256, size: staged.size }, ...(by.requestId ? { requestId: by.requestId } : {}) },
            tx,
          );
          return row;
        },
        { timeout: 60_000 },
      );
    } catch (err) {
      await staged.discard();
      // The same name@version uploaded concurrently: the first one won; the bytes stay only if an artifact uses them.
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') {
        await this.dropBlobIfUnused(staged.sha256);
        throw new Conflict(`artifact ${meta.name}@${meta.version} was uploaded by someone else meanwhile; upload yours under a new version`);
      }
      throw err;
    }
  }

  async list(where: Prisma.ArtifactWhereInput, take: number, orderBy: Prisma.ArtifactOrderByWithRelationInput[]): Promise<Artifact[]> {
    return this.prisma.artifact.findMany({ where, take, orderBy });
  }

  /** By id or name@version. */
  async find(ref: string): Promise<Artifact> {
    const parsed = parseArtifactRef(ref);
    const row = !parsed
      ? null
      : 'id' in parsed
        ? await this.prisma.artifact.findUnique({ where: { id: parsed.id } })
        : await this.prisma.artifact.findUnique({ where: { name_version: parsed } });
    if (!row) throw new NotFound(`artifact ${ref} not found; give its id or name@version (list them with GET /api/v1/artifacts)`);
    return row;
  }

  /** The artifact and its bytes; a blob missing from the store is an error naming the directory. */
  async blob(ref: string): Promise<ArtifactBlob> {
    const artifact = await this.find(ref);
    const size = await this.blobs.size(artifact.sha256);
    if (size === null) throw new Conflict(`the bytes of artifact ${artifact.name}@${artifact.version} (sha256 ${artifact.sha256}) are missing from the blob store; upload it again under a new version`);
    const vanished = (err: unknown) => {
      throw err instanceof BlobMissing ? new Conflict(`the bytes of artifact ${artifact.name}@${artifact.version} vanished from the blob store`) : err;
    };
    return {
      artifact,
      size,
      open: (range) => this.blobs.open(artifact.sha256, range).catch(vanished),
      send: (out, range) => this.blobs.send(artifact.sha256, out, range).catch(vanished),
    };
  }

  /** 409 naming the referrers while anything still uses it. */
  async delete(caller: Caller, ref: string): Promise<void> {
    const a = await this.find(ref);
    const users = await this.referrers.referrersOf(a);
    if (users.length > 0) {
      throw new Conflict(`artifact ${a.name}@${a.version} is still referenced by ${users.join('; ')}; change or finish those first, then delete it`);
    }
    await this.prisma.$transaction(async (tx) => {
      await lockBytes(tx, a.sha256);
      const gone = await tx.artifact.deleteMany({ where: { id: a.id } });
      if (gone.count === 0) throw new NotFound(`artifact ${ref} was deleted meanwhile`);
      await this.audit.record(
        { actor: caller.actor, action: 'artifact.delete', target: { type: 'artifact', id: a.id }, data: { name: a.name, version: a.version, sha256: a.sha256 }, requestId: caller.requestId },
        tx,
      );
      // Last, under the lock: an upload of the same bytes waits, then finds them gone and writes them again.
      if ((await tx.artifact.count({ where: { sha256: a.sha256 } })) === 0) await this.blobs.delete(a.sha256);
    });
  }

  private async dropBlobIfUnused(sha256: string): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      await lockBytes(tx, sha256);
      if ((await tx.artifact.count({ where: { sha256 } })) === 0) await this.blobs.delete(sha256);
    });
  }
}

/** Serialises commit and delete of the same bytes across replicas (a transaction-scoped advisory lock). */
async function lockBytes(tx: Prisma.TransactionClient, sha256: string): Promise<void> {
  await tx.$queryRaw`SELECT pg_advisory_xact_lock(hashtextextended(${'artifact:' + sha256}, 0))::text`;
}
