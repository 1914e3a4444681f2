import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { PassThrough } from 'node:stream';
import { Queue, Worker } from 'bullmq';
import { imageSpecSchema } from '@ibex/spec';
import { LocalImageSourceResolver, buildImage } from '@ibex/image';
import { ArtifactsService } from '../artifacts/artifacts.service.js';
import { within } from '../common/bounded.js';
import { NotFound } from '../common/errors.js';
import { Clock } from '../common/clock.js';
import { failpoint } from '../common/failpoints.js';
import { CONFIG, type Config } from '../config/config.js';
import { bullConnection, type ImageBuildData, imageBuildJobId, QUEUES } from '../gateway/queues.js';
import { PrismaService } from '../prisma/prisma.service.js';
import { RedisService } from '../redis/redis.service.js';
import { type ControllerImageSink, IMAGE_SINK } from './image-output.js';

/** How often a running build writes its heartbeat and progress (also bounds database writes). */
const HEARTBEAT_MS = 2_000;

/**
 * Runs image builds as BullMQ jobs (ids only; Postgres holds the build). Crash safety comes from
 * Postgres, not from BullMQ's stall detection: an attempt is claimed with a conditional update
 * (queued -> running, attempt + 1), the runner heart-beats while it builds, and every replica's
 * sweeper turns a running build whose heartbeat is older than IBEX_IMAGE_BUILD_STALE_MS back into
 * queued (another attempt) or failed (it was the last). A BullMQ job that runs twice (stalled
 * and handed to another replica) finds the build not queued and does nothing.
 */
@Injectable()
export class ImageBuildRunner implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly log = new Logger('ImageBuilds');
  readonly queue: Queue<ImageBuildData>;
  private worker?: Worker<ImageBuildData>;
  private sweepTimer?: NodeJS.Timeout;
  private sweeping?: Promise<unknown>;

  constructor(
    private readonly redis: RedisService,
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
    @Inject(CONFIG) private readonly config: Config,
    @Inject(IMAGE_SINK) private readonly sink: ControllerImageSink,
    private readonly artifacts: ArtifactsService,
  ) {
    this.queue = new Queue<ImageBuildData>(QUEUES.imageBuilds, {
      connection: bullConnection(redis),
      prefix: redis.prefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: { age: 7 * 24 * 3600, count: 1000 }, attempts: 1 },
    });
    this.queue.on('error', (err) => this.log.error(`image build queue: ${err.message}`));
  }

  onApplicationBootstrap(): void {
    const worker = new Worker<ImageBuildData>(QUEUES.imageBuilds, (job) => this.run(job.data.buildId), {
      connection: bullConnection(this.redis),
      prefix: this.redis.prefix,
      concurrency: this.config.images.concurrency,
    });
    worker.on('error', (err) => this.log.error(`image build worker: ${err.message}`));
    this.worker = worker;
    const tick = () => {
      this.sweeping ??= this.sweep()
        .catch((err: Error) => this.log.error(`image build sweep failed: ${err.message}`))
        .finally(() => (this.sweeping = undefined));
    };
    // At start too: builds a crashed replica (this one, before a restart) left running.
    tick();
    this.sweepTimer = setInterval(tick, Math.max(500, Math.floor(this.config.images.staleMs / 3)));
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.sweepTimer);
    await this.sweeping;
    const w = this.worker;
    this.worker = undefined;
    if (w) await within(w.close(), 3000, () => w.disconnect());
    await within(this.queue.close(), 3000, () => this.queue.disconnect());
  }

  /** Queues attempt `attempt` of a build (idempotent). A failure here is caught up by the sweeper. */
  async enqueue(buildId: string, attempt: number): Promise<void> {
    await this.queue.add('build', { buildId }, { jobId: imageBuildJobId(buildId, attempt) });
  }

  /** One attempt: claim, build into the sink while heart-beating, record the result. */
  async run(buildId: string): Promise<void> {
    const me = this.config.replicaId;
    const now = this.clock.now();
    const claimed = await this.prisma.imageBuild.updateMany({
      where: { id: buildId, status: 'queued' },
      data: { status: 'running', attempt: { increment: 1 }, runnerId: me, heartbeatAt: now, startedAt: now, progressPercent: 0, progressMessage: 'starting', error: null },
    });
    if (claimed.count === 0) return; // already running elsewhere, finished, or gone
    const row = await this.prisma.imageBuild.findUniqueOrThrow({ where: { id: buildId } });
    const mine = { id: buildId, status: 'running' as const, runnerId: me };
    let progress = { percent: 0, message: 'starting' };
    let lastWrite = 0;
    const beat = async (force = false) => {
      const t = this.clock.now();
      if (!force && t.getTime() - lastWrite < HEARTBEAT_MS) return;
      lastWrite = t.getTime();
      await this.prisma.imageBuild.updateMany({ where: mine, data: { heartbeatAt: t, progressPercent: progress.percent, progressMessage: progress.message } });
    };
    const timer = setInterval(() => void beat().catch(() => {}), HEARTBEAT_MS);
    // An API caller must not read arbitrary files of the controller host into an image: `{ path }`
    // sources resolve only under IBEX_IMAGE_SOURCE_DIR, and not at all without it.
    const src = this.config.images.sourceDir;
    const resolver = new LocalImageSourceResolver({
      ...(src ? { root: src } : { refusePaths: 'paths on the controller host are not allowed (IBEX_IMAGE_SOURCE_DIR is not set); give { url, sha256 } or { artifact }, or set IBEX_IMAGE_SOURCE_DIR to the directory that holds root filesystems and kernel modules' }),
      // `{ artifact }` sources: the blob store's bytes, copied aside and checked against the artifact's sha256 before use.
      artifacts: async (ref) => {
        const blob = await this.artifacts.blob(ref).catch((err: unknown) => {
          throw err instanceof NotFound ? new Error(`the artifact ${ref} does not exist; upload it first (list them with GET /api/v1/artifacts)`) : err;
        });
        return { sha256: blob.artifact.sha256, open: () => blob.open() };
      },
    });
    try {
      const spec = imageSpecSchema.parse(row.spec);
      const pipe = new PassThrough();
      const [built, stored] = await Promise.all([
        buildImage(spec, resolver, pipe, {
          onProgress: (p) => {
            progress = { percent: p.percent, message: p.detail ? `${p.step}: ${p.detail}` : p.step };
            if (p.step === 'archive' && p.percent >= 50) failpoint('image-build-mid-archive');
          },
        }),
        this.sink.put(pipe, { name: spec.name, buildId, createdBy: row.createdBy }),
      ]);
      if (built.sha256 !== stored.sha256) throw new Error(`the stored image has sha256 ${stored.sha256}, the built one ${built.sha256}`);
      await this.prisma.imageBuild.updateMany({
        where: mine,
        data: { status: 'succeeded', progressPercent: 100, progressMessage: 'done', sha256: built.sha256, size: BigInt(built.size), entries: built.entries, warnings: built.warnings, outputRef: stored.ref, finishedAt: this.clock.now(), heartbeatAt: this.clock.now() },
      });
      this.log.log(`image build ${buildId} (${spec.name}): ${built.size} bytes, sha256 ${built.sha256}`);
    } catch (err) {
      // A build is deterministic: what failed (a missing base, a bad sha256, an unknown module) fails again. No retry.
      const message = (err as Error).message;
      await this.prisma.imageBuild.updateMany({ where: mine, data: { status: 'failed', error: message, finishedAt: this.clock.now(), heartbeatAt: this.clock.now() } });
      this.log.warn(`image build ${buildId} failed: ${message}`);
    } finally {
      clearInterval(timer);
      await resolver.close();
    }
  }

  /** Builds whose runner went quiet go back to queued (or fail on their last attempt); queued builds Redis lost are queued again. */
  async sweep(): Promise<{ requeued: number; failed: number; reenqueued: number }> {
    const cutoff = new Date(this.clock.now().getTime() - this.config.images.staleMs);
    const stale = await this.prisma.imageBuild.findMany({ where: { status: 'running', heartbeatAt: { lt: cutoff } }, select: { id: true, attempt: true, maxAttempts: true, runnerId: true } });
    let requeued = 0;
    let failed = 0;
    for (const b of stale) {
      const last = b.attempt >= b.maxAttempts;
      const r = await this.prisma.imageBuild.updateMany({
        where: { id: b.id, status: 'running', attempt: b.attempt, heartbeatAt: { lt: cutoff } },
        data: last
          ? { status: 'failed', error: `the controller replica building it (${b.runnerId ?? '?'}) stopped during attempt ${b.attempt} of ${b.maxAttempts}; create the build again`, finishedAt: this.clock.now() }
          : { status: 'queued', progressPercent: 0, progressMessage: `queued again: the replica building it (${b.runnerId ?? '?'}) stopped during attempt ${b.attempt}`, runnerId: null },
      });
      if (r.count === 0) continue;
      if (last) failed++;
      else {
        requeued++;
        await this.enqueue(b.id, b.attempt + 1);
      }
    }
    const lost = await this.prisma.imageBuild.findMany({ where: { status: 'queued', updatedAt: { lt: cutoff } }, select: { id: true, attempt: true } });
    for (const b of lost) await this.enqueue(b.id, b.attempt + 1);
    if (requeued || failed) this.log.warn(`image builds whose replica stopped: ${requeued} queued again, ${failed} failed`);
    return { requeued, failed, reenqueued: lost.length };
  }
}
