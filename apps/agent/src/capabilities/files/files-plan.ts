import { createHash } from 'node:crypto';
import type { FileEntry, FilesSection } from '@ibex/spec';
import type { StepSummary } from '../../engine/section-result.js';
import { diffableText, unifiedDiff } from '../../engine/unified-diff.js';

/** Files up to this size keep their text in the observation, for the dry-run diff. */
export const DIFF_MAX_BYTES = 64 * 1024;

/** What is at a desired path now. Keyed by the device path in `FilesActual`. */
export type FileActual =
  | { kind: 'absent' }
  /** `text`: the content, when it is world-readable UTF-8 text of at most DIFF_MAX_BYTES (for diffs). */
  | { kind: 'file'; mode: number; size: number; sha256: string; text?: string }
  | { kind: 'symlink'; target: string }
  | { kind: 'other'; what: string }
  | { kind: 'unreachable'; reason: string };

export interface FilesActual {
  entries: Record<string, FileActual>;
}

/**
 * `before`: the text being replaced or removed (null: nothing there), or undefined when it
 * cannot be shown (binary, too large, a symlink); only for the summary's diff.
 */
export type FilesStep =
  | { action: 'write'; path: string; data: Buffer; sha256: string; mode: number; replaces: 'absent' | 'file' | 'symlink'; before?: string | null }
  | { action: 'chmod'; path: string; mode: number; from: number }
  | { action: 'remove'; path: string; was: 'file' | 'symlink'; before?: string | null }
  | { action: 'refuse'; path: string; reason: string };

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function desiredBytes(entry: FileEntry): Buffer {
  return Buffer.from(entry.content ?? '', entry.encoding === 'base64' ? 'base64' : 'utf8');
}

export const parseMode = (mode: string): number => parseInt(mode, 8);
export const formatMode = (mode: number): string => '0' + (mode & 0o7777).toString(8).padStart(3, '0');

/** Pure: the steps that make `actual` match `spec`, in the order of the entries. */
export function planFiles(spec: FilesSection, actual: FilesActual): FilesStep[] {
  const steps: FilesStep[] = [];
  for (const entry of spec.entries) {
    const path = entry.path;
    const now: FileActual = actual.entries[path] ?? { kind: 'absent' };
    if (now.kind === 'unreachable') {
      steps.push({ action: 'refuse', path, reason: now.reason });
      continue;
    }
    if (now.kind === 'other') {
      const verb = entry.ensure === 'present' ? 'replaces' : 'removes';
      steps.push({ action: 'refuse', path, reason: `is a ${now.what}; the files section ${verb} only files and symlinks` });
      continue;
    }
    if (entry.ensure === 'absent') {
      if (now.kind !== 'absent') steps.push({ action: 'remove', path, was: now.kind, ...(now.kind === 'file' && now.text !== undefined ? { before: now.text } : {}) });
      continue;
    }
    const data = desiredBytes(entry);
    const digest = sha256(data);
    const mode = parseMode(entry.mode);
    if (now.kind !== 'file' || now.sha256 !== digest) {
      const before = now.kind === 'absent' ? null : now.kind === 'file' ? now.text : undefined;
      steps.push({ action: 'write', path, data, sha256: digest, mode, replaces: now.kind, ...(before !== undefined ? { before } : {}) });
    } else if ((now.mode & 0o7777) !== mode) {
      steps.push({ action: 'chmod', path, mode, from: now.mode });
    }
  }
  return steps;
}

/**
 * The unified diff of a change, when both sides are text (`before` undefined: not showable).
 * Empty when the change is not text: the summary's text says what happens instead.
 */
function diffOf(path: string, before: string | null | undefined, after: Buffer | null): string {
  if (before === undefined) return '';
  if (after === null) return unifiedDiff(path, before, null);
  if (after.length > DIFF_MAX_BYTES) return '';
  const text = diffableText(after);
  return text === undefined ? '' : unifiedDiff(path, before, text);
}

export function summarizeFilesStep(step: FilesStep): StepSummary {
  switch (step.action) {
    case 'write': {
      const what = { absent: 'creates it', file: 'replaces the file', symlink: 'replaces the symlink' }[step.replaces];
      // A private file (a key) shows no content, before or after.
      const diff = step.mode & 0o004 ? diffOf(step.path, step.before, step.data) : '';
      return {
        action: step.action,
        path: step.path,
        size: step.data.length,
        sha256: step.sha256,
        mode: formatMode(step.mode),
        text: `write ${step.path} (${step.data.length} bytes, mode ${formatMode(step.mode)}; ${what}${diff ? '' : '; no diff: binary, larger than 64 KiB, not world-readable or a symlink'})`,
        ...(diff ? { diff } : {}),
      };
    }
    case 'chmod':
      return { action: step.action, path: step.path, mode: formatMode(step.mode), text: `chmod ${step.path} ${formatMode(step.mode)} (was ${formatMode(step.from)})` };
    case 'remove': {
      const diff = diffOf(step.path, step.before, null);
      return { action: step.action, path: step.path, text: `remove ${step.path} (a ${step.was})`, ...(diff ? { diff } : {}) };
    }
    case 'refuse':
      return { action: step.action, path: step.path, text: `cannot manage ${step.path}: ${step.reason}` };
  }
}
