import { Global, Module } from '@nestjs/common';
import { CONFIG, type Config } from '../config/config.js';
import { ImageBuildRunner } from './image-build-runner.service.js';
import { IMAGE_SINK, fileImageSink } from './image-output.js';

/** VM image builds: the BullMQ runner and the output sink (docs/images.md). */
@Global()
@Module({
  providers: [ImageBuildRunner, { provide: IMAGE_SINK, inject: [CONFIG], useFactory: (config: Config) => fileImageSink(config.images.dir) }],
  exports: [ImageBuildRunner, IMAGE_SINK],
})
export class ImagesModule {}
