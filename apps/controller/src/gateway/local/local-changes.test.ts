import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { JobOutcome, type LocalChange } from '@ibex/proto';
import { FakeAgent } from '../../testing/fake-agent.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { connectedDevice } from '../testing/fixtures.js';

interface AuditEventView {
  actor: { type: string; id: string | null; name: string | null };
  action: string;
  target: { type: string; id: string } | null;
  data: Record<string, unknown>;
}

function change(fields: Partial<LocalChange> = {}): LocalChange {
  const t = Date.parse('2026-12-01T10:00:00Z');
  return {
    changeId: randomUUID(),
    type: 'generations.rollback',
    paramsJson: JSON.stringify({ reason: 'at the console' }),
    startedAtMs: t,
    result: { outcome: JobOutcome.JOB_OUTCOME_SUCCEEDED, outputJson: JSON.stringify({ current: 'g1' }), error: '', retryable: false, finishedAtMs: t + 1500 },
    user: 'alice',
    log: [{ tsMs: t + 1000, level: 'info', text: 'current is g1' }],
    ...fields,
  };
}

describe('local changes: jobs run at the device console, reported at the next connection', () => {
  let c: TestController;
  const agents: FakeAgent[] = [];
  const track = (a: FakeAgent) => (agents.push(a), a);
  const audited = async (deviceId: string): Promise<AuditEventView[]> => {
    const res = await c.api(`/api/v1/audit?action=device.local_job&targetType=device&targetId=${deviceId}`);
    assert.equal(res.status, 200);
    return ((await res.json()) as { items: AuditEventView[] }).items;
  };

  before(async () => {
    c = await startTestController();
  });
  after(async () => {
    for (const a of agents) a.close();
    await c?.close();
  });

  it('records each change once as an audit entry by the device, acknowledging every copy', async () => {
    const { device, agent } = await connectedDevice(c, 'console-1');
    track(agent);
    const first = change();
    agent.send({ $case: 'localChange', value: first });
    await agent.acked(first.changeId);
    const entries = await audited(device.deviceId);
    assert.equal(entries.length, 1);
    const [e] = entries;
    assert.deepEqual(e!.actor, { type: 'device', id: device.deviceId, name: 'console-1' });
    assert.deepEqual(e!.target, { type: 'device', id: device.deviceId });
    assert.deepEqual(e!.data, {
      changeId: first.changeId,
      type: 'generations.rollback',
      params: { reason: 'at the console' },
      outcome: 'succeeded',
      error: null,
      output: { current: 'g1' },
      startedAt: '2026-12-01T10:00:00.000Z',
      finishedAt: '2026-12-01T10:00:01.500Z',
      user: 'alice',
      log: [{ at: '2026-12-01T10:00:01.000Z', level: 'info', text: 'current is g1' }],
    });

    // The agent re-sends until it sees the Ack (a reconnect in between): acknowledged again, recorded once.
    agent.close();
    const again = track(await FakeAgent.connect(c.grpcAddress, device.credential));
    again.send({ $case: 'localChange', value: first });
    await again.acked(first.changeId);
    const failed = change({ type: 'generations.upgrade', result: { outcome: JobOutcome.JOB_OUTCOME_FAILED, outputJson: '', error: 'interrupted: the agent restarted while the job was running', retryable: true, finishedAtMs: Date.now() } });
    again.send({ $case: 'localChange', value: failed });
    await again.acked(failed.changeId);
    const after = await audited(device.deviceId);
    assert.equal(after.length, 2);
    assert.deepEqual(
      after.map((x) => [x.data['type'], x.data['outcome'], x.data['error']]),
      [
        ['generations.upgrade', 'failed', 'interrupted: the agent restarted while the job was running'],
        ['generations.rollback', 'succeeded', null],
      ],
    );
    // The key is per device: another device's change with the same id is its own entry.
    const other = await connectedDevice(c, 'console-2');
    track(other.agent);
    other.agent.send({ $case: 'localChange', value: first });
    await other.agent.acked(first.changeId);
    assert.equal((await audited(other.device.deviceId)).length, 1);
    assert.equal((await audited(device.deviceId)).length, 2);
  });

  it('ends the stream with INVALID_ARGUMENT naming the field on a malformed change, recording nothing', async () => {
    const { device, agent } = await connectedDevice(c, 'console-bad');
    track(agent);
    agent.send({ $case: 'localChange', value: change({ changeId: 'not-a-uuid', type: 'Bad Type', result: undefined }) });
    const end = await agent.ended;
    assert.equal(end.code, status.INVALID_ARGUMENT);
    assert.match(end.details, /^invalid LocalChange: /);
    assert.match(end.details, /change_id: must be a change id \(UUID\)/);
    assert.match(end.details, /type: must be a job type such as generations\.upgrade/);
    assert.match(end.details, /result: is required/);
    assert.equal((await audited(device.deviceId)).length, 0);
  });
});
