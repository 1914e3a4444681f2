import { join } from 'node:path';
import type { ResolvedArtifact } from '@ibex/spec';
import { FatalError } from '../../common/errors.js';
import { failpoint } from '../../common/failpoints.js';
import { writeDeviceFile } from '../../system/device-file-writer.js';
import { RootEscapeError, resolveUnderRoot } from '../../system/root-path.js';
import { fetchVerified } from '../../artifacts/verified-source.js';
import { run } from './btrfs.js';
import { chrootArgv } from './chroot-exec.js';
import type { GenerationsRoot, Progress } from './generations-root.js';
import { genDir, genRoot, renderFstab, volumePaths } from './layout.js';

// Building a new generation's root (init and upgrade): its image, its fstab, its commands.

export type ImageSource =
  | { kind: 'tarball' | 'sendStream'; path?: string; url?: string; artifact?: string | ResolvedArtifact; sha256?: string }
  | { kind: 'empty' };

/**
 * The image as a local file whose sha256 was checked, before anything on the volume changes (a
 * bad artifact changes nothing): a URL is downloaded into the store's downloads directory, a
 * path is resolved under --root. `download` is the file to remove afterwards (null for a path).
 */
export async function fetchImage(g: GenerationsRoot, src: Exclude<ImageSource, { kind: 'empty' }>, progress: Progress, signal: AbortSignal | undefined): Promise<{ file: string; download: string | null }> {
  if (src.artifact !== undefined) {
    // The controller resolves a reference before it sends the job; a bare name here means it did not.
    if (typeof src.artifact === 'string') throw new FatalError(`artifact: ${src.artifact} was not resolved by the controller; send the job through the controller, or use a path or url with its sha256`);
    return fetchVerified({ artifact: src.artifact, endpoint: g.artifacts }, src.artifact.sha256, g.store.downloadsDir, progress, signal);
  }
  if (src.sha256 === undefined) throw new FatalError('sha256: required: the artifact is verified before it is used');
  if (src.path === undefined) return fetchVerified({ url: src.url! }, src.sha256, g.store.downloadsDir, progress, signal);
  // Symlinks on the way resolve inside --root (as the device sees the path), never into the host.
  const { host } = await resolveUnderRoot(g.sys, g.root, src.path).catch((err: unknown) => {
    throw err instanceof RootEscapeError ? new FatalError(`path: ${err.message}`) : err;
  });
  if ((await g.sys.lstat(host))?.isSymbolicLink()) throw new FatalError(`path: ${src.path} is a symlink; name the image file itself`);
  return fetchVerified({ hostPath: host }, src.sha256, g.store.downloadsDir, progress, signal);
}

/** A new writable `snapshots/<id>/@` holding the image. */
export async function makeRootFromImage(g: GenerationsRoot, volume: string, id: string, src: ImageSource, file: string | null, progress: Progress, signal: AbortSignal | undefined): Promise<void> {
  const root = genRoot(volume, id);
  if (src.kind === 'empty') {
    await g.btrfs.create(root);
    failpoint('gen-snapshotted');
    return;
  }
  if (src.kind === 'tarball') {
    await g.btrfs.create(root);
    failpoint('gen-snapshotted');
    progress(20, 'unpacking the tarball');
    // GNU tar refuses `..` and absolute member names and delays symlinks, so a hostile archive cannot write outside the new root.
    await run(g.sys, ['tar', '-x', '-f', file!, '-C', root, '--numeric-owner', '-p', '--xattrs', '--xattrs-include=*'], { signal });
    return;
  }
  // A send stream makes a read-only subvolume named by the sender: receive it aside, then take a
  // writable snapshot as `@` (fstab and commands still have to go in).
  progress(20, 'receiving the send stream');
  const recv = join(genDir(volume, id), '.receive');
  await g.sys.mkdir(recv, 0o755);
  await g.btrfs.receive(file!, recv, signal);
  const got = await g.sys.readdir(recv);
  if (got.length !== 1 || !(await g.btrfs.isSubvolume(join(recv, got[0]!)))) throw new FatalError(`the send stream must hold exactly one subvolume; it made ${got.length ? got.join(', ') : 'none'}`);
  await g.btrfs.snapshot(join(recv, got[0]!), root);
  failpoint('gen-snapshotted');
  await g.btrfs.delete(join(recv, got[0]!));
  await g.sys.rmdirIfEmpty(recv);
}

/** The wiki renders the volume's fstab template into each new root's /etc/fstab. */
export async function renderFstabInto(g: GenerationsRoot, volume: string, id: string): Promise<void> {
  const p = volumePaths(volume);
  const st = await g.sys.lstat(p.fstab);
  if (!st?.isFile()) return;
  const etc = join(genRoot(volume, id), 'etc');
  // Never through a symlink: the image decides what /etc is, and it must not point outside.
  if (!(await g.sys.lstat(etc))?.isDirectory()) return;
  const text = renderFstab((await g.sys.readFile(p.fstab)).toString('utf8'), id);
  await writeDeviceFile(g.sys, join(etc, 'fstab'), Buffer.from(text), { mode: 0o644, symlink: 'refuse', who: 'the generations fstab rendering' });
}

/** argv arrays run in a chroot of the new root, in order; the first that fails stops the upgrade. */
export async function runCommands(g: GenerationsRoot, volume: string, id: string, commands: string[][], progress: Progress, signal: AbortSignal | undefined): Promise<void> {
  for (const [i, argv] of commands.entries()) {
    progress(25 + Math.round((i / commands.length) * 50), `running ${argv.join(' ')}`);
    signal?.throwIfAborted();
    // SIGKILL: unshare ignores SIGTERM while it waits; killing it kills the namespace (--kill-child).
    const r = await g.sys.exec(chrootArgv(g.selfCommand, genRoot(volume, id), argv), { signal, killSignal: 'SIGKILL' });
    if (r.code !== 0) {
      const tail = (r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ');
      throw new FatalError(`commands[${i}] (${argv.join(' ')}) failed in the new generation (${r.code === null ? `signal ${r.signal}` : `exit ${r.code}`})${tail ? `: ${tail}` : ''}; nothing was switched`);
    }
  }
}
