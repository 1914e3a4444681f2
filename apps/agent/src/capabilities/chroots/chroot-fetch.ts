import { join } from 'node:path';
import type { ArtifactEndpoint } from '../../artifacts/artifact-endpoint.js';
import type { CapabilityContext } from '../../engine/capability.js';
import { resolveUnderRoot } from '../../system/root-path.js';
import { fetchVerified } from '../../artifacts/verified-source.js';
import type { InstallSource } from './chroot-plan.js';

/**
 * The one place the chroots capability fetches bytes: the root filesystem tarball or apk.static,
 * hashed BEFORE anything is written into (or beside) the chroot. Runs in the capability's backup,
 * i.e. before the change is journaled, so a wrong checksum changes nothing.
 */

/** Where the verified input of an install is: a device file in place, or the download in the backup directory. */
export async function installInput(ctx: CapabilityContext, name: string, source: InstallSource): Promise<string> {
  if (source.path !== undefined) return (await resolveUnderRoot(ctx.sys, ctx.root, source.path)).host;
  return join(ctx.backupDir, `chroot-${name}.input`);
}

/**
 * `artifacts` is where a controller artifact is downloaded from (the connected agent's endpoint;
 * console commands have none, and an artifact source then fails naming what to do).
 */
export async function fetchInstallInput(ctx: CapabilityContext, name: string, source: InstallSource, artifacts: ArtifactEndpoint | undefined): Promise<string> {
  const file = await installInput(ctx, name, source);
  if (source.path !== undefined) {
    await fetchVerified({ hostPath: file }, source.sha256, ctx.backupDir, () => {}, ctx.signal);
    return file;
  }
  // A controller artifact goes through the same resumable, sha256-verified fetcher as a URL.
  const from = source.kind === 'tarball' && source.artifact !== undefined ? { artifact: source.artifact, endpoint: artifacts } : { url: source.url! };
  const got = await fetchVerified(from, source.sha256, ctx.backupDir, () => {}, ctx.signal);
  if (got.file !== file) await ctx.sys.rename(got.file, file);
  return file;
}
