import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NodeSystemAdapter } from '../../system/node-system-adapter.js';
import type { Btrfs } from './btrfs.js';
import { readLayout } from './layout-read.js';

// Only the order is under test: every `@` counts as a read-only subvolume (real btrfs layouts
// are read in generations-btrfs.test.ts and the e2e tests).
const btrfs = { isSubvolume: async () => true, isReadOnly: async () => true } as unknown as Btrfs;

describe('readLayout: generations in creation order', () => {
  let vol: string;
  before(async () => (vol = await mkdtemp(join(tmpdir(), 'ibex-layout-order-'))));
  after(() => rm(vol, { recursive: true, force: true }));

  it('two generations made within one second keep the order they were made in, whatever their random letters', async () => {
    // Same second; the later one sorts first by id ("A" < "z").
    const ids = ['20261203193746zzzzzzzz', '20261203193746AAAAAAAA', '20261203193747mmmmmmmm'];
    for (const id of ids) {
      await mkdir(join(vol, 'snapshots', id), { recursive: true });
      await new Promise((r) => setTimeout(r, 20));
    }
    await mkdir(join(vol, 'links'), { recursive: true });
    const l = await readLayout(new NodeSystemAdapter(), btrfs, vol);
    assert.deepEqual(
      l.generations.map((g) => g.id),
      ids,
    );
    assert.equal(l.generations[0]!.createdAtMs, l.generations[1]!.createdAtMs, 'the id timestamps tie');
  });
});
