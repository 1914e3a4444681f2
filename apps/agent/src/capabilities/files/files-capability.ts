import { dirname, join } from 'node:path';
import { type FilesSection, filesSectionSchema } from '@ibex/spec';
import { FatalError } from '../../common/errors.js';
import { failpoint } from '../../common/failpoints.js';
import type { Capability, CapabilityContext } from '../../engine/capability.js';
import { RevertSteps } from '../../engine/revert-steps.js';
import { placeDeviceSymlink, writeDeviceFile } from '../../system/device-file-writer.js';
import { isTempFileOf } from '../../system/system-adapter.js';
import { RootEscapeError, resolveUnderRoot } from '../../system/root-path.js';
import { diffableText } from '../../engine/unified-diff.js';
import { DIFF_MAX_BYTES, type FileActual, type FilesActual, type FilesStep, planFiles, sha256, summarizeFilesStep } from './files-plan.js';

/** What a path held before the steps ran, with host paths so revert needs no resolving. */
type BackedUp =
  | { path: string; host: string; kind: 'absent' }
  | { path: string; host: string; kind: 'file'; mode: number; copy: string }
  | { path: string; host: string; kind: 'symlink'; target: string };

export interface FilesBackup {
  entries: BackedUp[];
  /** Parent directories the write steps will create, outermost first. */
  createdDirs: string[];
}

async function observeOne(ctx: CapabilityContext, path: string): Promise<FileActual> {
  let host: string;
  try {
    host = (await resolveUnderRoot(ctx.sys, ctx.root, path)).host;
  } catch (err) {
    if (err instanceof RootEscapeError) return { kind: 'unreachable', reason: err.message };
    throw err;
  }
  const st = await ctx.sys.lstat(host);
  if (!st) return { kind: 'absent' };
  if (st.isSymbolicLink()) return { kind: 'symlink', target: await ctx.sys.readlink(host) };
  if (st.isFile()) {
    const data = await ctx.sys.readFile(host);
    // Dry runs show what a file held; one others may not read (a key, /etc/shadow) stays unshown.
    const text = data.length <= DIFF_MAX_BYTES && st.mode & 0o004 ? diffableText(data) : undefined;
    return { kind: 'file', mode: st.mode & 0o7777, size: st.size, sha256: sha256(data), ...(text !== undefined ? { text } : {}) };
  }
  const what = st.isDirectory() ? 'directory' : st.isFIFO() ? 'fifo' : st.isSocket() ? 'socket' : 'device node';
  return { kind: 'other', what };
}

async function hostOf(ctx: CapabilityContext, path: string): Promise<string> {
  return (await resolveUnderRoot(ctx.sys, ctx.root, path)).host;
}

export const filesCapability: Capability<FilesSection, FilesActual, FilesStep, FilesBackup> = {
  section: 'files',
  schema: filesSectionSchema,

  async observe(ctx, spec) {
    const entries: Record<string, FileActual> = {};
    for (const e of spec.entries) entries[e.path] = await observeOne(ctx, e.path);
    return { entries };
  },

  plan: planFiles,
  summarize: summarizeFilesStep,

  executors: {
    async write(step, ctx) {
      const r = await resolveUnderRoot(ctx.sys, ctx.root, step.path);
      for (const dir of r.missingParents) await ctx.sys.mkdir(dir, 0o755).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      // A symlink at the path is replaced by the file (the files section manages the path itself, not what a link points to).
      await writeDeviceFile(ctx.sys, r.host, step.data, { mode: step.mode, symlink: 'replace', beforeRename: () => failpoint('files-before-rename') });
    },
    async chmod(step, ctx) {
      await ctx.sys.chmod(await hostOf(ctx, step.path), step.mode);
    },
    async remove(step, ctx) {
      await ctx.sys.unlink(await hostOf(ctx, step.path));
    },
    async refuse(step) {
      throw new FatalError(`${step.path}: ${step.reason}`);
    },
  },

  async backup(ctx, steps) {
    const entries: BackedUp[] = [];
    const createdDirs: string[] = [];
    const seen = new Set<string>();
    for (const step of steps) {
      if (step.action === 'refuse' || seen.has(step.path)) continue;
      seen.add(step.path);
      const r = await resolveUnderRoot(ctx.sys, ctx.root, step.path);
      for (const d of r.missingParents) if (!createdDirs.includes(d)) createdDirs.push(d);
      const st = await ctx.sys.lstat(r.host);
      if (!st) {
        entries.push({ path: step.path, host: r.host, kind: 'absent' });
      } else if (st.isSymbolicLink()) {
        entries.push({ path: step.path, host: r.host, kind: 'symlink', target: await ctx.sys.readlink(r.host) });
      } else if (st.isFile()) {
        const copy = String(entries.length);
        await writeDeviceFile(ctx.sys, join(ctx.backupDir, copy), await ctx.sys.readFile(r.host), { mode: 0o600, symlink: 'refuse' });
        entries.push({ path: step.path, host: r.host, kind: 'file', mode: st.mode & 0o7777, copy });
      }
    }
    return { entries, createdDirs };
  },

  async revert(ctx, backup) {
    const steps = new RevertSteps('files', ctx.log);
    for (const b of [...backup.entries].reverse()) {
      await steps.step(b.kind === 'absent' ? `remove ${b.path}` : `restore ${b.path}`, async () => {
        // A write interrupted by a crash leaves its temp file beside the target.
        for (const name of await ctx.sys.readdir(dirname(b.host))) if (isTempFileOf(name, b.host)) await ctx.sys.unlink(join(dirname(b.host), name));
        if (b.kind === 'absent') await ctx.sys.unlink(b.host);
        else if (b.kind === 'symlink') await placeDeviceSymlink(ctx.sys, b.host, b.target);
        else await writeDeviceFile(ctx.sys, b.host, await ctx.sys.readFile(join(ctx.backupDir, b.copy)), { mode: b.mode, symlink: 'replace' });
      });
    }
    for (const dir of [...backup.createdDirs].reverse()) await steps.step(`remove the directory ${dir} it created`, () => ctx.sys.rmdirIfEmpty(dir));
    steps.finish();
  },
};
