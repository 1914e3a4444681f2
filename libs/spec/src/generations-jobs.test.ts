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

  it('accepts an artifact by id or name@version, without a sha256 (the controller fills it in)', () => {
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'tarball', artifact: 'alpine-root@3.21.0' } }), []);
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'sendStream', artifact: '3f1c2d4e-0000-4000-8000-000000000001' } }), []);
    assert.deepEqual(issues('generations.init', { volume: '/vol', image: { kind: 'tarball', artifact: 'base@1' } }), []);
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'tarball', artifact: 'no-version' } }).length, 1);
    assert.match(issues('generations.upgrade', { from: { kind: 'tarball', artifact: 'no-version' } })[0]!, /^params\.from\.artifact: /);
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'tarball', artifact: 'a@1', url: 'http://h/x', sha256: sha } }), ['params.from.path: give exactly one of path, url or artifact for a tarball']);
  });

  it('names the field that is wrong', () => {
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'commands' } }), ['params.commands: an upgrade from commands needs at least one command']);
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'tarball', path: '/x.tar' } }), ['params.from.sha256: required: the artifact is verified before it is used']);
    assert.deepEqual(issues('generations.upgrade', { from: { kind: 'tarball', path: '/x', url: 'http://h/x', sha256: sha } }), ['params.from.path: give exactly one of path, url or artifact for a tarball']);
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
