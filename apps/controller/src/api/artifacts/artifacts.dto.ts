import { z } from 'zod';
import { ARTIFACT_NAME, ARTIFACT_VERSION, artifactKinds } from '@ibex/spec';
import { pageQueryShape, pageSchema } from '../http/pagination.js';
import { timestamp } from '../http/schemas.js';

const LABEL = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}=[A-Za-z0-9._-]{0,63}$/;
const ARCH = /^[a-z0-9_]{1,32}$/;

const commaList = (what: string, re: RegExp, hint: string) =>
  z
    .string()
    .max(4096)
    .transform((s, ctx) => {
      const parts = s.split(',').map((p) => p.trim()).filter((p) => p !== '');
      for (const p of parts) if (!re.test(p)) ctx.addIssue({ code: 'custom', message: `"${p}" is not ${what} (${hint})` });
      return parts;
    });

export const uploadArtifactQuery = z
  .object({
    name: z.string().regex(ARTIFACT_NAME, 'must be 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit'),
    version: z.string().regex(ARTIFACT_VERSION, 'must be 1-64 letters, digits, ".", "_", "+", "~" or "-", starting with a letter or digit'),
    kind: z.enum(artifactKinds, { message: `must be one of ${artifactKinds.join(', ')}` }).default('file'),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits')
      .optional()
      .describe('Expected sha256 of the body: a mismatch is refused (400) and nothing becomes visible.'),
    labels: commaList('a label', LABEL, 'key=value').optional().describe('Comma-separated key=value pairs.'),
    architectures: commaList('an architecture', ARCH, 'e.g. x86_64, aarch64').optional().describe('Comma-separated, as in the device facts (`arch`); empty = any.'),
  })
  .strict();
export type UploadArtifactQuery = z.output<typeof uploadArtifactQuery>;

export const listArtifactsQuery = z
  .object({
    name: z.string().regex(ARTIFACT_NAME, 'must be an artifact name').optional(),
    kind: z.enum(artifactKinds).optional(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits').optional(),
    ...pageQueryShape,
  })
  .strict();
export type ListArtifactsQuery = z.output<typeof listArtifactsQuery>;

export const artifactView = z
  .object({
    id: z.uuid(),
    name: z.string(),
    version: z.string(),
    ref: z.string().describe('name@version, as a spec names it.'),
    kind: z.enum(artifactKinds),
    sha256: z.string(),
    size: z.number().int().describe('Bytes.'),
    contentType: z.string(),
    labels: z.record(z.string(), z.string()),
    architectures: z.array(z.string()),
    createdBy: z.string().nullable().describe('Id of the API token that uploaded it.'),
    createdAt: timestamp,
    downloadPath: z.string().describe('GET it (Range supported) with an API token or a device credential.'),
  })
  .meta({ id: 'Artifact' });
export type ArtifactView = z.output<typeof artifactView>;
export const artifactPage = pageSchema(artifactView, 'ArtifactPage');
