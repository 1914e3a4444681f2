import { Global, Module } from '@nestjs/common';
import { CONFIG, type Config } from '../config/config.js';
import { ArtifactReferrers } from './artifact-referrers.service.js';
import { ArtifactRefs } from './artifact-refs.service.js';
import { ArtifactsService } from './artifacts.service.js';
import { BLOB_STORE } from './blob-store.port.js';
import { CoreArtifactReferrers } from './core-referrers.service.js';
import { FsBlobStore } from './fs-blob-store.js';

/**
 * The artifact store: metadata, blobs (BLOB_STORE: the filesystem today), the referrers
 * registry other modules register with, and the resolver of references in specs and jobs.
 */
@Global()
@Module({
  providers: [
    { provide: BLOB_STORE, inject: [CONFIG], useFactory: (c: Config) => new FsBlobStore(c.artifacts.dir) },
    ArtifactReferrers,
    CoreArtifactReferrers,
    ArtifactsService,
    ArtifactRefs,
  ],
  exports: [BLOB_STORE, ArtifactReferrers, ArtifactsService, ArtifactRefs],
})
export class ArtifactsModule {}
