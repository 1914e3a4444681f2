import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GenerationsInventory } from '@ibex/spec';
import { silentLogger } from '../common/log.js';
import type { Config } from '../config/config.js';
import type { Credential } from '../journal/credential.js';
import { scratchRoot } from '../testing/agent-process.js';
import { ScriptedController } from '../testing/scripted-controller.js';
import { Agent } from './agent.js';

const inventory = (current: string, collectedAtMs: number): GenerationsInventory => ({
  volume: '/mnt/volume',
  current,
  booted: 'g1',
  lastGood: 'g1',
  trial: current === 'g1' ? null : { id: current, deadlineAtMs: 9_000_000, bootsLeft: 1 },
  generations: ['g1', 'g2'].map((id, i) => ({ id, createdAtMs: 1000 + i, status: id === 'g1' ? 'good' : 'trial', booted: id === 'g1', current: id === current, slot: id === current ? 0 : 1, readOnly: true, complete: true })),
  collectedAtMs,
});

// In process, against a real grpc-js peer: Hello and FactsReport carry the inventory the
// collector returns at that moment; reportFactsNow() sends one even when nothing changed.
describe('agent facts with a generations inventory', () => {
  let controller: ScriptedController;
  let agent: Agent;
  let scratch: ReturnType<typeof scratchRoot>;
  let inv: GenerationsInventory | undefined = inventory('g1', 1);
  const reports = () => controller.ofKind('facts').map((r) => (r.msg.$case === 'facts' ? r.msg.value.facts!.generationsJson : ''));

  before(async () => {
    controller = await ScriptedController.start({ credential: 'ibxd_x' });
    scratch = scratchRoot('ibex-agent-facts-');
    const cfg: Config = { dataDir: scratch.dataDir, root: scratch.root, logLevel: 'error', logFormat: 'text', driftCheckIntervalSec: 3600, healDrift: true };
    const cred: Credential = { deviceId: 'dev-1', deviceName: 'one', credential: 'ibxd_x', controller: controller.url, labels: {}, enrolledAtMs: 0 };
    agent = new Agent(cfg, cred, silentLogger, { collectGenerations: async () => inv });
    await agent.start();
  });
  after(async () => {
    await agent?.stop();
    await controller?.stop();
    scratch?.cleanup();
  });

  it('sends the inventory in Hello, and a FactsReport with the fresh one on reportFactsNow()', async () => {
    const session = await controller.waitForSession();
    assert.deepEqual(JSON.parse(session.hello!.facts!.generationsJson), inventory('g1', 1));
    // Heartbeats start once the agent has the Welcome: from then on it can send.
    await controller.waitFor('a heartbeat', () => controller.ofKind('heartbeat').length > 0);

    inv = inventory('g2', 2);
    assert.equal(await agent.reportFactsNow(), true);
    await controller.waitFor('a FactsReport', () => reports().length === 1);
    assert.deepEqual(JSON.parse(reports()[0]!), inventory('g2', 2));

    // Nothing changed: still sent (a caller asking for "now" gets a report).
    assert.equal(await agent.reportFactsNow(), true);
    await controller.waitFor('a second FactsReport', () => reports().length === 2);

    inv = undefined;
    await agent.reportFactsNow();
    await controller.waitFor('a FactsReport without inventory', () => reports().length === 3);
    assert.equal(reports()[2], '');
  });

  it('sends the inventory as it is at reconnection in the next Hello', async () => {
    inv = inventory('g1', 3);
    controller.endCurrent();
    const session = await controller.waitForSession(controller.sessions.length);
    assert.deepEqual(JSON.parse(session.hello!.facts!.generationsJson), inventory('g1', 3));
  });
});
