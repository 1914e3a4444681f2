import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import type { Facts } from '@ibex/spec';
import { enrollAgent, FakeAgent, sampleFacts, sampleGenerations } from '../../testing/fake-agent.js';
import { startTestController, type TestController } from '../../testing/test-controller.js';
import { waitFor } from '../../testing/wait-for.js';
import { createEnrollmentToken, enrollDevice } from '../testing/fixtures.js';

// proto Facts.generations_json -> the stored facts' `generations` (docs/protocol.md, "Facts").
describe('generations inventory in facts', () => {
  let c: TestController;
  const agents: FakeAgent[] = [];
  const track = (a: FakeAgent): FakeAgent => (agents.push(a), a);
  const storedFacts = async (deviceId: string) => (await c.prisma.device.findUniqueOrThrow({ where: { id: deviceId } })).facts as Facts | null;

  before(async () => {
    c = await startTestController({ env: { IBEX_HEARTBEAT_INTERVAL_MS: '200', IBEX_OFFLINE_AFTER_MS: '60000' } });
  });
  after(async () => {
    for (const a of agents) a.close();
    await c?.close();
  });

  it('stores the inventory from Hello and from a FactsReport, and none when generations_json is empty', async () => {
    const d = await enrollDevice(c, 'gen-facts');
    assert.equal((await storedFacts(d.deviceId))?.generations, undefined, 'enrolled without an inventory');

    const inv = sampleGenerations();
    const agent = track(await FakeAgent.connect(c.grpcAddress, d.credential, { facts: { ...sampleFacts('gen-facts'), generationsJson: JSON.stringify(inv) } }));
    assert.deepEqual((await storedFacts(d.deviceId))?.generations, inv);

    const switched = { ...inv, current: 'g2', trial: null, generations: inv.generations.map((g) => ({ ...g, current: g.id === 'g2' })) };
    agent.send({ $case: 'facts', value: { facts: { ...sampleFacts('gen-facts'), generationsJson: JSON.stringify(switched) } } });
    await waitFor('the new inventory', async () => (await storedFacts(d.deviceId))?.generations?.current === 'g2');
    assert.deepEqual((await storedFacts(d.deviceId))?.generations, switched);

    agent.send({ $case: 'facts', value: { facts: { ...sampleFacts('gen-facts'), kernel: 'no-generations', generationsJson: '' } } });
    await waitFor('facts without an inventory', async () => (await storedFacts(d.deviceId))?.kernel === 'no-generations');
    assert.equal((await storedFacts(d.deviceId))?.generations, undefined);
  });

  it('accepts an inventory at enrollment', async () => {
    const inv = sampleGenerations();
    const r = await enrollAgent(c.grpcAddress, { enrollmentToken: await createEnrollmentToken(c), name: 'gen-enroll', facts: { ...sampleFacts('gen-enroll'), generationsJson: JSON.stringify(inv) } });
    assert.deepEqual((await storedFacts(r.deviceId))?.generations, inv);
  });

  it('ends the stream with INVALID_ARGUMENT naming facts.generations_json on bad JSON or a bad inventory, changing nothing', async () => {
    const d = await enrollDevice(c, 'gen-bad');
    const good = sampleGenerations();
    const agent = track(await FakeAgent.connect(c.grpcAddress, d.credential, { facts: { ...sampleFacts('gen-bad'), generationsJson: JSON.stringify(good) } }));
    agent.send({ $case: 'facts', value: { facts: { ...sampleFacts('gen-bad'), kernel: 'changed', generationsJson: '{"volume":' } } });
    const end = await agent.ended;
    assert.equal(end.code, status.INVALID_ARGUMENT);
    assert.match(end.details, /^invalid FactsReport: facts\.generations_json: must be empty or valid JSON/);
    assert.deepEqual((await storedFacts(d.deviceId))?.generations, good, 'nothing changed');
    assert.notEqual((await storedFacts(d.deviceId))?.kernel, 'changed');

    const bad = { ...good, generations: [{ ...good.generations[0]!, status: 'fine' }] };
    const hello = track(new FakeAgent(c.grpcAddress, d.credential));
    hello.hello({ facts: { ...sampleFacts('gen-bad'), generationsJson: JSON.stringify(bad) } });
    const end2 = await hello.ended;
    assert.equal(end2.code, status.INVALID_ARGUMENT);
    assert.match(end2.details, /facts\.generations_json: is not a generations inventory: generations\[0\]\.status: /);
    assert.deepEqual((await storedFacts(d.deviceId))?.generations, good, 'nothing changed');

    await assert.rejects(
      enrollAgent(c.grpcAddress, { enrollmentToken: await createEnrollmentToken(c), name: 'gen-bad-enroll', facts: { ...sampleFacts('x'), generationsJson: JSON.stringify({ ...good, extra: 1 }) } }),
      (err: { code: number; details: string }) => err.code === status.INVALID_ARGUMENT && /facts\.generations_json: is not a generations inventory: .*extra/.test(err.details),
    );
    assert.equal(await c.prisma.device.count({ where: { name: 'gen-bad-enroll' } }), 0);
  });
});
