import { Injectable } from '@nestjs/common';
import { PrismaService } from '../prisma/prisma.service.js';
import { ArtifactReferrers, type ReferencedArtifact } from './artifact-referrers.service.js';

/**
 * The referrers this controller has today: the current desired-state revision of each device
 * and every job not finished yet. A resolved reference stores the artifact's id (a uuid) in
 * the JSON, so a text search of the JSON for the id finds it without knowing which section or
 * job type holds it. Old revisions and finished jobs are history: they do not hold an artifact.
 */
@Injectable()
export class CoreArtifactReferrers {
  constructor(prisma: PrismaService, registry: ArtifactReferrers) {
    registry.register({
      kind: 'desired-state',
      async referrersOf(a: ReferencedArtifact) {
        const rows = await prisma.$queryRaw<Array<{ name: string; revision: number }>>`
          SELECT d.name, r.revision FROM device d
          JOIN desired_revision r ON r."deviceId" = d.id AND r.revision = d."desiredRevision"
          WHERE d."revokedAt" IS NULL AND strpos(r.spec::text, ${a.id}) > 0
          ORDER BY d.name LIMIT 5`;
        return rows.map((r) => `the desired state of device "${r.name}" (revision ${r.revision})`);
      },
    });
    registry.register({
      kind: 'jobs',
      async referrersOf(a: ReferencedArtifact) {
        const rows = await prisma.$queryRaw<Array<{ id: string; type: string; status: string; name: string }>>`
          SELECT j.id::text, j.type, j.status::text, d.name FROM job j JOIN device d ON d.id = j."deviceId"
          WHERE j.status IN ('queued', 'delivered', 'running') AND strpos(j.params::text, ${a.id}) > 0
          ORDER BY j."createdAt" LIMIT 5`;
        return rows.map((r) => `job ${r.id} (${r.type}, ${r.status}) on device "${r.name}"`);
      },
    });
  }
}
