import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NodeSystemAdapter } from '../../system/node-system-adapter.js';
import { silentLogger } from '../../common/log.js';
import { agentCommand } from '../../testing/agent-process.js';
import { makeBtrfsVolume, makeRootfsTarball, sha256File } from '../../testing/btrfs-volume.js';
import { GenerationsRoot } from './generations-root.js';
import { init } from './init-adopt.js';
import { resolveInRoot } from './volume-path.js';

describe('generations volume path under --root', () => {
  it('follows symlinks the way the device sees them: absolute targets from --root, .. never above it', (t) => {
    const root = mkdtempSync(join(tmpdir(), 'ibex-volpath-'));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    mkdirSync(join(root, 'media/usb'), { recursive: true });
    symlinkSync('/media', join(root, 'mnt'));
    symlinkSync('usb', join(root, 'media/stick'));
    symlinkSync('../../../../media', join(root, 'up'));
    symlinkSync('loop', join(root, 'loop'));
    assert.equal(resolveInRoot(root, '/mnt/usb'), join(root, 'media/usb'), 'absolute link target taken from --root, not the host /');
    assert.equal(resolveInRoot(root, '/mnt/stick/'), join(root, 'media/usb'), 'the last component too');
    assert.equal(resolveInRoot(root, '/up/usb'), join(root, 'media/usb'), '.. stops at --root');
    assert.equal(resolveInRoot(root, '/mnt/new/vol'), join(root, 'media/new/vol'), 'missing components are kept');
    assert.equal(resolveInRoot(root, '/plain/dir'), join(root, 'plain/dir'));
    assert.throws(() => resolveInRoot(root, '/loop/x'), /more than 40 symbolic links/);
  });

  it('initialises and reports a volume whose parent is a symlink (absolute, as on the device)', async (t) => {
    const v = await makeBtrfsVolume(t);
    // <root>/mnt -> /vol: on the device, /mnt/root is the volume mounted at /vol/root.
    symlinkSync('/vol', join(v.root, 'mnt'));
    const tar = makeRootfsTarball(v.scratch, 'base', 'base');
    const [cmd, pre] = agentCommand();
    const g = new GenerationsRoot({ root: v.root, sys: new NodeSystemAdapter(), log: silentLogger, selfCommand: [cmd, ...pre] });
    assert.equal(g.volumeHost({ volume: '/mnt/root' }), v.host);
    const inv = await init(g, { volume: '/mnt/root', commons: [], image: { kind: 'tarball', path: tar.slice(v.root.length), sha256: sha256File(tar) } });
    assert.equal(inv.volume, '/mnt/root');
    assert.ok(inv.current, 'a first generation on the real volume');
    assert.equal((await g.layout()).slots[0], inv.current);
  });
});
