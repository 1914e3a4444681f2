import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startTestController, type TestController } from '../testing/test-controller.js';
import { waitFor } from '../testing/wait-for.js';
import type { RolloutView } from './rollouts.dto.js';
import { SchedulesService } from './schedules.service.js';

interface Resolved {
  id: string;
  name: string;
  version: string;
  sha256: string;
  size: number;
}
const fromOf = (payload: unknown) => (payload as { upgrade: { from: { artifact: Resolved | string } } }).upgrade.from.artifact;

// "Upgrade the site=lab devices every Sunday 02:00 to the newest generation image": a schedule
// names the image `name@newest`, and each occurrence resolves it to the upload of that name
// that is newest then.
describe('a schedule to the newest generation image (name@newest)', () => {
  let c: TestController;
  before(async () => {
    c = await startTestController();
  });
  after(async () => {
    await c?.close();
  });

  const upload = async (name: string, version: string, text: string) => {
    const res = await c.api(`/api/v1/artifacts?name=${name}&version=${version}&kind=generation-tarball`, { method: 'POST', body: Buffer.from(text), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.status, 201, await res.clone().text());
    return (await res.json()) as { id: string; sha256: string; size: number };
  };
  const issuePaths = async (res: Response) => ((await res.json()) as { error: { issues?: { path: string }[] } }).error.issues?.map((i) => i.path) ?? [];

  it('resolves name@newest at each occurrence, keeps it as written in the schedule, and refuses what it cannot resolve', async () => {
    const run = randomUUID().slice(0, 8);
    const img = `lab-root-${run}`;
    const v1 = await upload(img, '1', 'generation one\n');
    const rollout = (artifact: string) => ({
      name: `lab weekly ${run}`,
      target: { kind: 'selector', selector: `site=lab-${run}` },
      payload: { kind: 'generation_upgrade', upgrade: { from: { kind: 'tarball', artifact } } },
    });
    const res = await c.api('/api/v1/schedules', { method: 'POST', json: { name: `lab sunday ${run}`, cron: '0 2 * * 0', timeZone: 'Europe/Berlin', rollout: rollout(`${img}@newest`) } });
    assert.equal(res.status, 201, await res.clone().text());
    const s = (await res.json()) as { id: string; rollout: { payload: unknown } };
    assert.equal(fromOf(s.rollout.payload), `${img}@newest`, 'the schedule keeps the reference as written');

    const svc = c.app.get(SchedulesService);
    const payloadOf = async (id: string | null) => {
      assert.ok(id, 'the occurrence started a rollout');
      return fromOf((await c.prisma.rollout.findUniqueOrThrow({ where: { id } })).payload) as Resolved;
    };
    const first = await payloadOf(await svc.fire(s.id, `newest-test:${run}:1`));
    assert.deepEqual([first.id, first.version, first.sha256, first.size], [v1.id, '1', v1.sha256, v1.size]);

    await new Promise((r) => setTimeout(r, 10)); // a later upload time than v1's, even at ms resolution
    const v2 = await upload(img, '2', 'generation two, uploaded later\n');
    const second = await payloadOf(await svc.fire(s.id, `newest-test:${run}:2`));
    assert.deepEqual([second.id, second.version, second.sha256], [v2.id, '2', v2.sha256], 'the next occurrence takes the newer upload');
    assert.equal(fromOf((await (await c.api(`/api/v1/schedules/${s.id}`)).json() as { rollout: { payload: unknown } }).rollout.payload), `${img}@newest`);

    // A one-off rollout resolves it when it is created, like any reference.
    const once = await c.api('/api/v1/rollouts', { method: 'POST', json: { ...rollout(`${img}@newest`), name: `once ${run}` } });
    assert.equal(once.status, 201, await once.clone().text());
    assert.equal((fromOf(((await once.json()) as RolloutView).payload) as Resolved).id, v2.id);

    // Refused at the edge, naming the field: a name with no upload, and the reserved version.
    const unknown = await c.api('/api/v1/schedules', { method: 'POST', json: { name: `bad ${run}`, cron: '0 2 * * 0', rollout: rollout(`no-such-${run}@newest`) } });
    assert.equal(unknown.status, 400);
    assert.deepEqual(await issuePaths(unknown), ['rollout.payload.upgrade.from.artifact']);
    const reserved = await c.api(`/api/v1/artifacts?name=${img}&version=newest`, { method: 'POST', body: Buffer.from('x'), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(reserved.status, 400);
    assert.deepEqual(await issuePaths(reserved), ['version']);

    // Every upload of the name deleted: the occurrence starts nothing and says why.
    await waitFor('the rollouts to finish (they hold their artifacts)', async () => (await c.prisma.rollout.count({ where: { name: { contains: run }, status: { notIn: ['succeeded', 'failed', 'aborted'] } } })) === 0);
    for (const a of [v1, v2]) assert.equal((await c.api(`/api/v1/artifacts/${a.id}`, { method: 'DELETE' })).status, 204);
    assert.equal(await svc.fire(s.id, `newest-test:${run}:3`), null);
    const failed = await c.prisma.auditEvent.findFirstOrThrow({ where: { action: 'schedule.fire_failed', targetId: s.id } });
    assert.match(JSON.stringify(failed.data), new RegExp(`${img}@newest, which does not exist`));
    assert.equal(await c.prisma.rollout.count({ where: { scheduleId: s.id } }), 2);
  });
});
