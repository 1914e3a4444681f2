import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fieldIssues } from './errors.js';
import { jobTypes } from './jobs.js';

const issues = (type: keyof typeof jobTypes, params: unknown) => {
  const r = jobTypes[type].params.safeParse(params);
  return r.success ? [] : fieldIssues(r.error, 'params').map((i) => `${i.path}: ${i.message}`);
};
const sha = 'a'.repeat(64);

describe('generations job params', () => {
  it('accepts the three upgrade sources', () => {
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'commands' }, commands: [['apk', 'upgrade']] }), []);
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'tarball', path: '/var/cache/img.tar.gz', sha256: sha } }), []);
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'sendStream', url: 'https://example.com/img.btrfs', sha256: sha }, trial: false }), []);
  });

  it('names the field that is wrong', () => {
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'commands' } }), ['params.commands: an upgrade from commands needs at least one command']);
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'tarball', path: '/x.tar' } }), ['params.from.sha256: required: the artifact is verified before it is used']);
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'tarball', path: '/x', url: 'http://h/x', sha256: sha } }), ['params.from.path: give exactly one of path or url for a tarball']);
    assert.match(issues('generations.upgrade', { from: { kind: 'tarball', url: 'ftp://h/x', sha256: sha } })[0]!, /^params\.from\.url: must be an http:\/\/ or https:\/\/ URL/);
    assert.match(issues('generations.upgrade', { from: { kind: 'tarball', path: '/a/../b', sha256: 'ABC' } }).join('\n'), /params\.from\.path: must not contain \.\.\nparams\.from\.sha256: must be 64 lowercase hex digits/);
    assert.match(issues('generations.upgrade', { from: { kind: 'commands' }, commands: [[]] })[0]!, /^params\.commands\[0\]: must name a program/);
    assert.match(issues('generations.upgrade', { from: 'commands', commands: [['x']] })[0]!, /^params\.from: /);
    assert.match(issues('generations.upgrade', { from: { kind: 'zip' }, commands: [['x']] })[0]!, /^params\.from\.kind: /);
    assert.match(issues('generations.init', { volume: '/vol', commons: ['../x'], image: { kind: 'empty' } })[0]!, /^params\.commons\[0\]: must be a plain name/);
    assert.match(issues('generations.gc', { keep: -1 })[0]!, /^params\.keep: /);
    assert.match(issues('generations.rollback', { to: '' })[0]!, /^params\.to: /);
  });
});
