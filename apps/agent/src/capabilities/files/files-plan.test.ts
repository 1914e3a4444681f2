import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type FilesSection, filesSectionSchema } from '@ibex/spec';
import { type FilesActual, planFiles, sha256, summarizeFilesStep } from './files-plan.js';

const spec = (entries: unknown[]): FilesSection => filesSectionSchema.parse({ entries });
const file = (content: string, mode = 0o644) => ({ kind: 'file' as const, mode, size: content.length, sha256: sha256(Buffer.from(content)) });
const actual = (entries: FilesActual['entries']): FilesActual => ({ entries });
const actions = (s: ReturnType<typeof planFiles>) => s.map((x) => `${x.action} ${x.path}`);

describe('files planner', () => {
  it('is empty when everything matches (in sync)', () => {
    const s = spec([{ path: '/etc/a', content: 'x\n' }, { path: '/etc/gone', ensure: 'absent' }]);
    assert.deepEqual(planFiles(s, actual({ '/etc/a': file('x\n'), '/etc/gone': { kind: 'absent' } })), []);
  });

  it('writes missing or different files and symlinks in the way, in entry order', () => {
    const s = spec([
      { path: '/etc/new', content: 'n' },
      { path: '/etc/changed', content: 'new' },
      { path: '/etc/link', content: 'l' },
    ]);
    const steps = planFiles(s, actual({ '/etc/changed': file('old'), '/etc/link': { kind: 'symlink', target: '/x' } }));
    assert.deepEqual(actions(steps), ['write /etc/new', 'write /etc/changed', 'write /etc/link']);
    assert.deepEqual(steps.map((x) => x.action === 'write' && x.replaces), ['absent', 'file', 'symlink']);
    const w = steps[1]!;
    assert.ok(w.action === 'write' && w.data.toString() === 'new' && w.mode === 0o644 && w.sha256 === sha256(Buffer.from('new')));
  });

  it('only changes the mode when the content already matches', () => {
    const s = spec([{ path: '/etc/secret', content: 'k', mode: '600' }]);
    assert.deepEqual(planFiles(s, actual({ '/etc/secret': file('k', 0o644) })), [{ action: 'chmod', path: '/etc/secret', mode: 0o600, from: 0o644 }]);
    assert.deepEqual(planFiles(s, actual({ '/etc/secret': file('k', 0o600) })), []);
  });

  it('decodes base64 content before comparing', () => {
    const s = spec([{ path: '/bin/blob', content: Buffer.from([0, 1, 2, 255]).toString('base64'), encoding: 'base64' }]);
    const bytes = Buffer.from([0, 1, 2, 255]);
    assert.deepEqual(planFiles(s, actual({ '/bin/blob': { kind: 'file', mode: 0o644, size: 4, sha256: sha256(bytes) } })), []);
  });

  it('removes files and symlinks that must be absent', () => {
    const s = spec([{ path: '/a', ensure: 'absent' }, { path: '/b', ensure: 'absent' }]);
    assert.deepEqual(planFiles(s, actual({ '/a': file('x'), '/b': { kind: 'symlink', target: 'a' } })), [
      { action: 'remove', path: '/a', was: 'file' },
      { action: 'remove', path: '/b', was: 'symlink' },
    ]);
  });

  it('refuses directories and paths outside the root instead of touching them', () => {
    const s = spec([{ path: '/etc', content: 'x' }, { path: '/escape/x', content: 'y' }, { path: '/dir', ensure: 'absent' }]);
    const steps = planFiles(s, actual({ '/etc': { kind: 'other', what: 'directory' }, '/escape/x': { kind: 'unreachable', reason: 'points outside the root' }, '/dir': { kind: 'other', what: 'directory' } }));
    assert.deepEqual(steps.map((x) => x.action), ['refuse', 'refuse', 'refuse']);
    assert.equal(summarizeFilesStep(steps[0]!).text, 'cannot manage /etc: is a directory; the files section replaces only files and symlinks');
  });

  it('is pure: the same input gives the same plan', () => {
    const s = spec([{ path: '/x', content: 'a' }]);
    const a = actual({ '/x': file('b', 0o600) });
    assert.deepEqual(planFiles(s, a), planFiles(s, a));
  });

  it('summarizes steps in one line, the content only in the diff', () => {
    const [w] = planFiles(spec([{ path: '/x', content: 'value\n' }]), actual({}));
    const sum = summarizeFilesStep(w!);
    assert.equal(sum.text, 'write /x (6 bytes, mode 0644; creates it)');
    assert.equal(sum.diff, '--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+value\n');
  });

  it('diffs a replaced text file against what was observed, and a removed one against nothing', () => {
    const s = spec([{ path: '/etc/hosts', content: '127.0.0.1 localhost\n10.0.0.1 gw\n' }, { path: '/etc/old', ensure: 'absent' }]);
    const steps = planFiles(s, actual({ '/etc/hosts': { ...file('127.0.0.1 localhost\n'), text: '127.0.0.1 localhost\n' }, '/etc/old': { ...file('bye\n'), text: 'bye\n' } }));
    assert.deepEqual(
      steps.map((x) => summarizeFilesStep(x).diff),
      ['--- a/etc/hosts\n+++ b/etc/hosts\n@@ -1 +1,2 @@\n 127.0.0.1 localhost\n+10.0.0.1 gw\n', '--- a/etc/old\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n'],
    );
  });

  it('shows no diff for binary content, content not observed as text, or private files', () => {
    const binary = planFiles(spec([{ path: '/b', content: Buffer.from([0, 1]).toString('base64'), encoding: 'base64' }]), actual({}));
    const unseen = planFiles(spec([{ path: '/big', content: 'new\n' }]), actual({ '/big': file('too large to keep') }));
    const secret = planFiles(spec([{ path: '/etc/key', content: 'secret-value', mode: '0600' }]), actual({}));
    for (const step of [...binary, ...unseen, ...secret]) {
      const sum = summarizeFilesStep(step);
      assert.equal(sum.diff, undefined, step.path);
      assert.match(sum.text, /no diff: binary, larger than 64 KiB, not world-readable or a symlink/);
      assert.ok(!JSON.stringify(sum).includes('secret-value'));
    }
  });
});
