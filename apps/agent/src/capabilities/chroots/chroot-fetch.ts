import { join } from 'node:path';
import { FatalError } from '../../common/errors.js';
import type { CapabilityContext } from '../../engine/capability.js';
import { resolveUnderRoot } from '../../system/root-path.js';
import { fetchVerified } from '../generations/artifact.js';
import { noProgress } from '../generations/generations-root.js';
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

export async function fetchInstallInput(ctx: CapabilityContext, name: string, source: InstallSource): Promise<string> {
  const what = source.kind === 'apk-static' ? 'apk.static' : 'the root filesystem tarball';
  if (source.kind === 'tarball' && source.artifact !== undefined)
    throw new FatalError(`chroot ${name}: ${what} names the artifact ${source.artifact}, but this agent build cannot fetch from the controller's artifact store yet; give its url or path with the sha256 instead`);
  const file = await installInput(ctx, name, source);
  if (source.path !== undefined) {
    await fetchVerified({ hostPath: file }, source.sha256, ctx.backupDir, noProgress, ctx.signal);
    return file;
  }
  const got = await fetchVerified({ url: source.url! }, source.sha256, ctx.backupDir, noProgress, ctx.signal);
  if (got.file !== file) await ctx.sys.rename(got.file, file);
  return file;
}
