import { z } from 'zod';

/**
 * Artifacts: files the controller stores (docs/artifacts.md). A spec or job names one by id or
 * `name@version`; when the controller stores it, it replaces the name with the resolved
 * artifact (id, sha256, size), which is what the agent downloads and verifies.
 */
export const ARTIFACT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const ARTIFACT_VERSION = /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const artifactKinds = ['generation-tarball', 'generation-send-stream', 'chroot-tarball', 'vm-image', 'file'] as const;
export type ArtifactKind = (typeof artifactKinds)[number];

export type ArtifactRef = { id: string } | { name: string; version: string };

/** `3f1c...` (an id) or `alpine-root@3.21.0`; null when it is neither. */
export function parseArtifactRef(ref: string): ArtifactRef | null {
  if (UUID.test(ref)) return { id: ref.toLowerCase() };
  const at = ref.lastIndexOf('@');
  if (at <= 0) return null;
  const name = ref.slice(0, at);
  const version = ref.slice(at + 1);
  return ARTIFACT_NAME.test(name) && ARTIFACT_VERSION.test(version) ? { name, version } : null;
}

export const artifactRefSchema = z
  .string()
  .max(200)
  .refine((s) => parseArtifactRef(s) !== null, 'must be an artifact id or name@version (list them with GET /api/v1/artifacts)');

/** What the controller writes in place of a reference: enough for the agent to fetch and verify. */
export const resolvedArtifactSchema = z
  .object({
    id: z.string().regex(UUID, 'must be an artifact id'),
    name: z.string(),
    version: z.string(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
    size: z.number().int().min(0),
  })
  .strict();
export type ResolvedArtifact = z.infer<typeof resolvedArtifactSchema>;

/** A spec field naming an artifact: a reference as written, or the controller's resolution of it. */
export const artifactFieldSchema = z.union([artifactRefSchema, resolvedArtifactSchema]);
