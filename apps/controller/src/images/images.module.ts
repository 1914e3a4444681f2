import { Global, Module } from '@nestjs/common';
import { CONFIG, type Config } from '../config/config.js';
import { ImageBuildRunner } from './image-build-runner.service.js';
import { FileImageSink } from '@ibex/image';
import { ArtifactsService } from '../artifacts/artifacts.service.js';
import { ArtifactImageSink, IMAGE_SINK } from './image-output.js';
import { ImageBuildArtifactReferrers } from './image-build-referrers.service.js';

/** VM image builds: the BullMQ runner and the output sink, the artifact store (docs/images.md). */
@Global()
@Module({
  providers: [ImageBuildRunner, ImageBuildArtifactReferrers, { provide: IMAGE_SINK, inject: [ArtifactsService, CONFIG], useFactory: (artifacts: ArtifactsService, config: Config) => new ArtifactImageSink(artifacts, new FileImageSink(config.images.dir)) }],
  exports: [ImageBuildRunner, IMAGE_SINK],
})
export class ImagesModule {}
