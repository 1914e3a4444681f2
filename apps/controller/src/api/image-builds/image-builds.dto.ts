import { z } from 'zod';
import { imageSpecSchema } from '@ibex/spec';
import { timestamp } from '../http/schemas.js';

export const createImageBuildBody = z
  .object({
    spec: imageSpecSchema.describe('The image spec (docs/images.md): base, packages, files, hostname, users, network, services, kernel, console, agent.'),
    maxAttempts: z.number().int('must be a whole number').min(1, 'must be 1-5').max(5, 'must be 1-5').default(2).describe('Attempts when the replica building it stops (crash, restart); a build that fails is not retried.'),
  })
  .strict()
  .meta({ id: 'CreateImageBuild' });
export type CreateImageBuildBody = z.output<typeof createImageBuildBody>;

export const imageBuildView = z
  .object({
    id: z.uuid(),
    name: z.string(),
    status: z.enum(['queued', 'running', 'succeeded', 'failed']),
    attempt: z.number().int(),
    maxAttempts: z.number().int(),
    progress: z.object({ percent: z.number().int(), message: z.string() }),
    error: z.string().nullable(),
    warnings: z.array(z.string()).describe('Things that did not stop the build but may stop the VM (a runlevel link to a service the image lacks).'),
    sha256: z.string().nullable().describe('sha256 of the gzip\'d cpio archive, once built.'),
    size: z.number().int().nullable(),
    entries: z.number().int().nullable(),
    downloadUrl: z.string().nullable().describe('GET it for the image (application/gzip), once succeeded.'),
    artifact: z.string().nullable().describe('Once succeeded: the artifact holding the image (kind vm-image), as name@version (the version is the build id); also downloadable through /api/v1/artifacts.'),
    createdBy: z.string().nullable(),
    createdAt: timestamp,
    startedAt: timestamp.nullable(),
    finishedAt: timestamp.nullable(),
  })
  .meta({ id: 'ImageBuild' });
export type ImageBuildView = z.output<typeof imageBuildView>;
