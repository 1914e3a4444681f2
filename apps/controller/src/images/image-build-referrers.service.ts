import { Injectable } from '@nestjs/common';
import { ArtifactReferrers, type ReferencedArtifact } from '../artifacts/artifact-referrers.service.js';
import { PrismaService } from '../prisma/prisma.service.js';

/**
 * An image build that is queued or running still needs the artifacts its spec names as base or
 * packages (`{ artifact: "name@version" | id }`, kept as written): deleting one is refused until
 * the build has finished. A text search of the spec JSON for the quoted reference, as the core
 * referrers do for ids.
 */
@Injectable()
export class ImageBuildArtifactReferrers {
  constructor(prisma: PrismaService, registry: ArtifactReferrers) {
    registry.register({
      kind: 'image-builds',
      async referrersOf(a: ReferencedArtifact) {
        const byName = JSON.stringify(`${a.name}@${a.version}`);
        const byId = JSON.stringify(a.id);
        const rows = await prisma.$queryRaw<Array<{ id: string; name: string; status: string }>>`
          SELECT b.id::text, b.name, b.status::text FROM image_build b
          WHERE b.status IN ('queued', 'running') AND (strpos(b.spec::text, ${byName}) > 0 OR strpos(b.spec::text, ${byId}) > 0)
          ORDER BY b."createdAt" LIMIT 5`;
        return rows.map((r) => `image build ${r.id} (${r.name}, ${r.status})`);
      },
    });
  }
}
