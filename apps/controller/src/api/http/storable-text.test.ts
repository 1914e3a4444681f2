import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createDevice, expectError } from '../../testing/api-fixtures.js';
import { changedTables, dbFingerprint } from '../../testing/db-fingerprint.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';

// Found by the REST fuzzer: a NUL character or an unpaired surrogate reached Postgres (which
// stores neither in text or jsonb) and came back as a 500. Now a 400 naming the field.
describe('strings Postgres cannot store', () => {
  let c: TestController;
  before(async () => {
    c = await startTestController();
    await createDevice(c, 'text-dev');
  });
  after(async () => {
    await c?.close();
  });

  it('are refused with 400 naming the field, in the path, the query and the body, changing nothing', async () => {
    const before = await dbFingerprint(c.prisma);
    const inPath = await expectError(await c.api('/api/v1/devices/%00'), 400, 'validation_failed');
    assert.deepEqual(inPath.error.issues?.map((i) => i.path), ['device']);
    assert.match(inPath.error.message, /^invalid path parameter: device: contains a NUL character/);
    const inQuery = await expectError(await c.api('/api/v1/jobs?type=a%00b'), 400, 'validation_failed');
    assert.deepEqual(inQuery.error.issues?.map((i) => i.path), ['type']);
    const body = '{"description":"lab \\u0000 routers"}';
    const inBody = await expectError(await c.api('/api/v1/enrollment-tokens', { method: 'POST', body, headers: { 'content-type': 'application/json' } }), 400, 'validation_failed');
    assert.deepEqual(inBody.error.issues?.map((i) => i.path), ['description']);
    const spec = '{"spec":{"files":{"entries":[{"path":"/etc/motd","content":"half \\ud800 a pair"}]}}}';
    const nested = await expectError(await c.api('/api/v1/devices/text-dev/desired-state', { method: 'PUT', body: spec, headers: { 'content-type': 'application/json' } }), 400, 'validation_failed');
    assert.deepEqual(nested.error.issues?.map((i) => [i.path, i.message]), [['spec.files.entries[0].content', 'contains an unpaired UTF-16 surrogate, which is not valid Unicode; send valid UTF-8']]);
    const key = await expectError(await c.api('/api/v1/devices/text-dev', { method: 'PATCH', body: '{"labels":{"a\\u0000":"b"}}', headers: { 'content-type': 'application/json' } }), 400, 'validation_failed');
    assert.deepEqual(key.error.issues?.map((i) => i.path), ['labels.a\u0000']);
    assert.deepEqual(changedTables(before, await dbFingerprint(c.prisma)), []);
  });
});
