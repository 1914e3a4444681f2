import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { expectError, expectStatus } from '../testing/api-fixtures.js';
import { startTestController, type TestController } from '../testing/test-controller.js';
import { SchedulesService } from './schedules.service.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('schedules naming name@latest (real Postgres, Redis)', () => {
  let c: TestController;
  before(async () => (c = await startTestController()));
  after(() => c?.close());

  const upload = async (name: string, version: string, bytes: Buffer) =>
    expectStatus<{ id: string; sha256: string }>(await c.api(`/api/v1/artifacts?name=${name}&version=${version}&kind=generation-tarball`, { method: 'POST', body: bytes, headers: { 'content-type': 'application/octet-stream' } }), 201);
  const schedule = (name: string, artifact: string) =>
    c.api('/api/v1/schedules', {
      method: 'POST',
      json: {
        name,
        cron: '0 2 * * 0',
        timeZone: 'Europe/Berlin',
        rollout: { name, target: { kind: 'selector', selector: 'site=lab' }, payload: { kind: 'generation_upgrade', upgrade: { from: { kind: 'tarball', artifact } } } },
      },
    });
  const payloadOf = async (rolloutId: string) => {
    const r = await c.prisma.rollout.findUniqueOrThrow({ where: { id: rolloutId } });
    return (r.payload as { upgrade: { from: { artifact: { name: string; version: string; sha256: string } } } }).upgrade.from.artifact;
  };

  it('each occurrence upgrades to the newest version uploaded by then; the schedule keeps name@latest as written', async () => {
    const v1 = randomBytes(2000);
    const v2 = randomBytes(3000);
    await upload('lab-root', '2026.11.29', v1);
    const s = await expectStatus<{ id: string; rollout: { payload: { upgrade: { from: { artifact: unknown } } } } }>(await schedule('lab-weekly', 'lab-root@latest'), 201);
    assert.equal(s.rollout.payload.upgrade.from.artifact, 'lab-root@latest');
    const svc = c.app.get(SchedulesService);

    const first = await svc.fire(s.id, 'test:1');
    assert.ok(first);
    assert.deepEqual(await payloadOf(first), { ...(await payloadOf(first)), name: 'lab-root', version: '2026.11.29', sha256: sha(v1) });

    await upload('lab-root', '2026.12.06', v2);
    const second = await svc.fire(s.id, 'test:2');
    assert.ok(second);
    const a2 = await payloadOf(second);
    assert.deepEqual([a2.version, a2.sha256], ['2026.12.06', sha(v2)], 'the second occurrence took the newer upload');
    assert.equal((await payloadOf(first)).version, '2026.11.29', 'the first rollout stays pinned');
    const view = await expectStatus<{ rollout: { payload: { upgrade: { from: { artifact: unknown } } } } }>(await c.api(`/api/v1/schedules/${s.id}`), 200);
    assert.equal(view.rollout.payload.upgrade.from.artifact, 'lab-root@latest');
  });

  it('a pinned name@version in a schedule stays that version whatever is uploaded later', async () => {
    await upload('pinned-root', '1', randomBytes(100));
    const s = await expectStatus<{ id: string }>(await schedule('pinned', 'pinned-root@1'), 201);
    await upload('pinned-root', '2', randomBytes(100));
    const id = await c.app.get(SchedulesService).fire(s.id, 'test:1');
    assert.equal((await payloadOf(id!)).version, '1');
  });

  it('refuses a name@latest with no version uploaded, and an upload of version "latest", naming the field; stores nothing', async () => {
    const before = await c.prisma.rolloutSchedule.count();
    const bad = await expectError(await schedule('nothing', 'never-uploaded@latest'), 400, 'validation_failed');
    assert.ok(bad.error.issues?.some((i) => i.path === 'rollout.payload.upgrade.from.artifact' && /no version of that artifact is uploaded/.test(i.message)), JSON.stringify(bad));
    assert.equal(await c.prisma.rolloutSchedule.count(), before);
    const reserved = await expectError(await c.api('/api/v1/artifacts?name=x&version=latest', { method: 'POST', body: randomBytes(10), headers: { 'content-type': 'application/octet-stream' } }), 400, 'validation_failed');
    assert.ok(reserved.error.issues?.some((i) => i.path === 'version' && /reserved/.test(i.message)), JSON.stringify(reserved));
    assert.equal(await c.prisma.artifact.count({ where: { name: 'x' } }), 0);
  });

  it('an occurrence whose name@latest names nothing any more starts no rollout and says why in the audit log, once', async () => {
    const a = await upload('gone-root', '1', randomBytes(100));
    const s = await expectStatus<{ id: string }>(await schedule('gone', 'gone-root@latest'), 201);
    assert.equal((await c.api(`/api/v1/artifacts/${a.id}`, { method: 'DELETE' })).status, 204);
    const svc = c.app.get(SchedulesService);
    assert.equal(await svc.fire(s.id, 'test:1'), null);
    assert.equal(await svc.fire(s.id, 'test:1'), null);
    assert.equal(await c.prisma.rollout.count({ where: { scheduleId: s.id } }), 0);
    const rows = await c.prisma.auditEvent.findMany({ where: { action: 'schedule.fire_failed', targetId: s.id } });
    assert.equal(rows.length, 1);
    assert.match(JSON.stringify(rows[0]!.data), /gone-root@latest/);
  });
});
