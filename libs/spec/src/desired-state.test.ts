import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { desiredStateSchema } from './desired-state.js';
import { describeIssues, fieldIssues, parseOrThrow, ValidationError } from './errors.js';

describe('desired state schema', () => {
  it('accepts a files section and fills defaults', () => {
    const spec = parseOrThrow(desiredStateSchema, { files: { entries: [{ path: '/etc/motd', content: 'hi\n' }] } }, 'desired state');
    assert.deepEqual(spec.files?.entries[0], { path: '/etc/motd', content: 'hi\n', ensure: 'present', encoding: 'utf8', mode: '0644' });
  });

  it('refuses unknown sections naming them', () => {
    const r = desiredStateSchema.safeParse({ netwrk: {} });
    assert.equal(r.success, false);
    if (!r.success) assert.match(describeIssues(fieldIssues(r.error)), /netwrk/);
  });

  it('names the field path of a bad file entry', () => {
    const r = desiredStateSchema.safeParse({
      files: { entries: [{ path: '/etc/ok', content: '' }, { path: 'etc/../x', content: 'x', mode: '999' }, { path: '/etc/ok', ensure: 'absent' }] },
    });
    assert.equal(r.success, false);
    if (r.success) return;
    const issues = fieldIssues(r.error, 'spec');
    const paths = issues.map((i) => i.path);
    assert.ok(paths.includes('spec.files.entries[1].path'), paths.join());
    assert.ok(paths.includes('spec.files.entries[1].mode'), paths.join());
    assert.ok(paths.includes('spec.files.entries[2].path'), paths.join());
  });

  it('requires content for present files', () => {
    assert.throws(
      () => parseOrThrow(desiredStateSchema, { files: { entries: [{ path: '/etc/x' }] } }, 'desired state'),
      (e: unknown) => e instanceof ValidationError && e.issues[0]?.path === 'files.entries[0].content',
    );
  });
});
