// `ibex-agent build-image` and the `image.build` job at the console, run by the agent process
// (node main.js, or the single executable with IBEX_AGENT_BIN), with the builder of libs/image.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeBusyboxRootfs } from '@ibex/image/testing';
import { runAgent, scratchRoot } from '../testing/agent-process.js';

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

describe('ibex-agent build-image and the image.build job', () => {
  const s = scratchRoot('ibex-agent-image-');
  const rootfs = makeBusyboxRootfs();
  after(() => s.cleanup());
  after(() => rmSync(rootfs, { recursive: true, force: true }));
  const specFile = (name: string, spec: unknown) => {
    const f = join(s.root, `${name}.json`);
    writeFileSync(f, JSON.stringify(spec));
    return f;
  };
  const spec = { name: 'agent-built', base: { path: rootfs }, hostname: 'hv-guest-1', network: { interfaces: [{ name: 'lo', method: 'loopback' }, { name: 'eth0', method: 'dhcp' }] } };

  it('builds the image, prints its sha256, and the same spec gives the same bytes', async () => {
    const out1 = join(s.root, 'one.cpio.gz');
    const r = await runAgent(['build-image', '--spec', specFile('good', spec), '--out', out1, '--json'], {}, 120_000);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { path: string; sha256: string; size: number };
    assert.equal(res.sha256, sha(out1));
    assert.equal(res.size, readFileSync(out1).length);
    assert.match(r.stderr, /^base: reading the base root filesystem$/m);
    const out2 = join(s.root, 'two.cpio.gz');
    const r2 = await runAgent(['build-image', '--spec', specFile('good', spec), '--out', out2], {}, 120_000);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stdout, new RegExp(`^built ${out2}: \\d+ bytes, \\d+ entries, sha256 ${res.sha256}\n$`));
  });

  it('refuses a bad spec with exit 2 naming the field, and writes nothing', async () => {
    const out = join(s.root, 'bad.cpio.gz');
    const r = await runAgent(['build-image', '--spec', specFile('bad', { ...spec, hostname: 'no_underscores', users: [{ name: 'Bob', uid: 1 }] }), '--out', out]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /invalid image spec: hostname: must be a host name label.*; users\[0\]\.name: must be a user name/);
    assert.equal(existsSync(out), false);
    const r2 = await runAgent(['build-image', '--spec', specFile('missing', { ...spec, base: { path: '/nonexistent/rootfs' } }), '--out', out]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /base: \/nonexistent\/rootfs does not exist on the build host/);
    assert.equal(existsSync(out) || existsSync(out + '.partial'), false);
  });

  it('runs as the image.build job, paths under --root', async () => {
    cpSync(rootfs, join(s.root, 'srv/rootfs'), { recursive: true, verbatimSymlinks: true });
    const params = specFile('job', { spec: { ...spec, base: { path: '/srv/rootfs' } }, out: '/srv/images/guest.cpio.gz' });
    const r = await runAgent(['job', 'image.build', '--params', params, '--root', s.root, '--json'], {}, 120_000);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; output?: { path: string; sha256: string } });
    const result = lines.find((l) => l.output)!;
    assert.equal(result.output!.path, '/srv/images/guest.cpio.gz');
    assert.equal(result.output!.sha256, sha(join(s.root, 'srv/images/guest.cpio.gz')));
  });
});
