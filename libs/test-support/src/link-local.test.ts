import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { linkLocalBlockTaken, pickLinkLocalBlock } from './link-local.js';

const ipJson = (...locals: string[]) => JSON.stringify([{ ifname: 'lo', addr_info: [{ local: '127.0.0.1' }] }, { ifname: 'veth0', addr_info: locals.map((local) => ({ local })) }, { ifname: 'down' }]);

describe('link-local blocks for test veths', () => {
  it('sees a host address anywhere in the /29, and nothing outside it', () => {
    assert.equal(linkLocalBlockTaken(ipJson('169.254.120.13'), 120, 8), true);
    assert.equal(linkLocalBlockTaken(ipJson('169.254.120.8'), 120, 8), true);
    assert.equal(linkLocalBlockTaken(ipJson('169.254.120.16'), 120, 8), false);
    assert.equal(linkLocalBlockTaken(ipJson('169.254.121.9'), 120, 8), false);
    assert.equal(linkLocalBlockTaken(ipJson('10.254.120.9'), 120, 8), false);
  });

  it('picks host, peer and other peer addresses in one /29, refusing a taken block and the metadata /24', () => {
    const seq = (...n: number[]) => () => n.shift()!;
    assert.deepEqual(pickLinkLocalBlock(ipJson(), seq(150, 3)), { hostIp: '169.254.150.25', peerIp: '169.254.150.26', otherPeerIp: '169.254.150.30', prefixLength: 30 });
    assert.equal(pickLinkLocalBlock(ipJson('169.254.150.29'), seq(150, 3)), undefined);
    assert.equal(pickLinkLocalBlock(ipJson(), seq(169, 0))?.hostIp, '169.254.170.1');
    for (let i = 0; i < 200; i++) {
      const block = pickLinkLocalBlock(ipJson())!;
      const [, , b, d] = block.hostIp.split('.').map(Number);
      assert.ok(b! >= 100 && b! < 200 && b !== 169 && d! % 8 === 1, block.hostIp);
    }
  });
});
