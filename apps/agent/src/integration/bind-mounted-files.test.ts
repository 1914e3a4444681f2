import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runAgent, scratchRoot } from '../testing/agent-process.js';
import { PrivateMountNamespace } from '../testing/mount-namespace.js';

/**
 * The files section on a target that is a bind mount (issue 16): the agent runs inside a
 * private mount namespace where the scratch root's /etc/hosts is a bind mount of a file
 * outside the root, as /etc/hosts and /etc/resolv.conf are in Docker and LXC. rename() over it
 * fails with EBUSY; the agent must write it in place, and a revert must put the old bytes back in place.
 */
describe('files section on a bind-mounted target', () => {
  let ns: PrivateMountNamespace;
  const s = scratchRoot('ibex-bind-files-');
  const source = join(s.root, 'outside-hosts');
  const target = join(s.root, 'etc/hosts');
  before(() => {
    mkdirSync(join(s.root, 'etc'), { recursive: true });
    writeFileSync(join(s.root, 'etc/not-a-dir'), 'a file');
    ns = PrivateMountNamespace.create();
  });
  after(() => {
    ns?.destroy();
    s.cleanup();
  });
  const reset = () => {
    writeFileSync(source, '127.0.0.1 localhost old\n', { mode: 0o644 });
    writeFileSync(target, 'the file the bind mount hides\n');
    ns.run(['umount', target], false);
    ns.bind(source, target);
  };
  const apply = (entries: unknown[]) => {
    const spec = join(s.root, `spec-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(spec, JSON.stringify({ files: { entries } }));
    return runAgent(['apply', '--spec', spec, '--root', s.root, '--data-dir', s.dataDir, '--json'], {}, 30_000, ns.prefix);
  };

  it('writes it in place (the bind source gets the bytes) and a second apply has nothing to do', async () => {
    reset();
    const r = await apply([{ path: '/etc/hosts', content: '127.0.0.1 localhost new\n', mode: '0640' }]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(JSON.parse(r.stdout).sections[0].state, 'in_sync', r.stdout);
    assert.equal(readFileSync(source, 'utf8'), '127.0.0.1 localhost new\n');
    assert.equal(statSync(source).mode & 0o777, 0o640);
    assert.equal(ns.run(['cat', target]).stdout, '127.0.0.1 localhost new\n');
    const again = await apply([{ path: '/etc/hosts', content: '127.0.0.1 localhost new\n', mode: '0640' }]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout).sections.map((x: { state: string; steps: unknown[] }) => [x.state, x.steps.length]), [['in_sync', 0]]);
  });

  it('reverts in place: a later step fails and the bind-mounted file gets its old bytes back', async () => {
    reset();
    const r = await apply([
      { path: '/etc/hosts', content: 'changed\n' },
      { path: '/etc/not-a-dir/x', content: 'cannot be written' },
    ]);
    assert.notEqual(r.code, 0);
    const sec = JSON.parse(r.stdout).sections[0];
    assert.equal(sec.state, 'reverted', r.stdout);
    assert.doesNotMatch(sec.error, /EBUSY|half applied/);
    assert.equal(readFileSync(source, 'utf8'), '127.0.0.1 localhost old\n');
  });
});
