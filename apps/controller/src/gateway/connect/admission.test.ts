import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { watchConcurrency } from '../../testing/concurrency.js';
import { FakeAgent } from '../../testing/fake-agent.js';
import { startTestController } from '../../testing/test-controller.js';
import { enrollDevice } from '../testing/fixtures.js';

describe('connect admission', () => {
  it('handles at most 16 Hellos at once, in order, when 60 agents connect together, and welcomes them all', async () => {
    const c = await startTestController({ env: { IBEX_OFFLINE_AFTER_MS: '60000' } });
    const agents: FakeAgent[] = [];
    try {
      const devices = await Promise.all(Array.from({ length: 60 }, (_, i) => enrollDevice(c, `admit-${i}`)));
      // open() records the connection with one device.updateMany per Hello: counted from here.
      const hellos = watchConcurrency(c.prisma.device, 'updateMany');
      try {
        agents.push(...(await Promise.all(devices.map((d) => FakeAgent.connect(c.grpcAddress, d.credential)))));
      } finally {
        hellos.restore();
      }
      const { most } = hellos;
      assert.equal(agents.length, 60, 'every agent welcomed');
      assert.ok(most <= 16, `${most} Hellos handled at once`);
      assert.ok(most >= 2, `${most}: the Hellos did not overlap at all, the test proves nothing`);
    } finally {
      for (const a of agents) a.close();
      await c.close();
    }
  });
});
