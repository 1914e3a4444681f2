import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Server } from 'node:http';
import { startTestController } from './test-controller.js';

it('a test controller boots on ephemeral ports against its own database and cleans up', async () => {
  const c = await startTestController();
  try {
    assert.match(c.baseUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(c.grpcAddress, /^127\.0\.0\.1:\d+$/);
    assert.ok(c.app.getHttpServer() instanceof Server);
    assert.equal(await c.prisma.device.count(), 0);
  } finally {
    await c.close();
  }
});
