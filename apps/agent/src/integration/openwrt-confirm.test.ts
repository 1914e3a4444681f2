import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SectionState, type StateReport } from '@ibex/proto';
import { writeCredential } from '../journal/credential.js';
import { AgentProcess } from '../testing/agent-process.js';
import { TEST_CREDENTIAL } from '../testing/fixtures.js';
import { sh } from '../testing/netns-device.js';
import { names, openwrtWorld } from '../testing/openwrt-world.js';
import { ScriptedController } from '../testing/scripted-controller.js';

/**
 * The openwrt section's apply-and-confirm window with `ibex-agent run`, as root: the agent runs in
 * the device namespace and reaches a scripted controller over a veth; the OpenWrt container is
 * the stand-in. A change is kept only once the controller acknowledges the report sent after it
 * (the engine's confirmation, the same as the network section's); otherwise it is undone at the
 * deadline, or at the next start if the agent died inside the window.
 */

const CONFIRM_SEC = 4;
const intent = (root: string) => join(root, 'var/lib/ibex-agent/intents/openwrt.json');
const openwrtOf = (r: StateReport) => r.sections.find((s) => s.section === 'openwrt');
const desired = (revision: number, spec: unknown) => ({ $case: 'desired', value: { revision, specJson: JSON.stringify({ openwrt: spec }), createdAtMs: Date.now() } }) as const;

async function setup(t: { after: (fn: () => unknown) => void }) {
  const w = await openwrtWorld(t);
  const agents: AgentProcess[] = [];
  let controller: ScriptedController | undefined;
  t.after(async () => {
    await Promise.all(agents.map((a) => a.kill()));
    await controller?.stop();
  });
  const link = w.dev.addHostLink('ctl0');
  sh([...w.dev.prefix, 'ip', 'addr', 'add', `${link.deviceIp}/30`, 'dev', 'ctl0']);
  sh([...w.dev.prefix, 'ip', 'link', 'set', 'ctl0', 'up']);
  controller = await ScriptedController.start({ credential: TEST_CREDENTIAL, host: link.hostIp });
  writeCredential(join(w.dev.dataDir, 'credential.json'), { deviceId: 'dev-1', deviceName: 'device-one', credential: TEST_CREDENTIAL, controller: controller.url, labels: {}, enrolledAtMs: Date.now() });
  const start = (env: Record<string, string> = {}) => {
    const a = AgentProcess.start(['run', '--root', w.dev.root, '--log-level', 'debug'], env, w.dev.prefix);
    agents.push(a);
    return a;
  };
  const finalReport = (revision: number, timeoutMs: number) =>
    controller!.waitFor(`a final openwrt report for revision ${revision}`, () => controller!.stateReports().find((r) => r.revision === revision && openwrtOf(r) && openwrtOf(r)!.state !== SectionState.SECTION_STATE_APPLYING), timeoutMs);
  return { w, controller, start, finalReport };
}

describe('openwrt changes confirm themselves or are undone', () => {
  it('is kept once the controller acknowledges the report sent after it', async (t) => {
    const { w, controller, start, finalReport } = await setup(t);
    const agent = start();
    await controller.waitForSession();
    controller.send(desired(1, w.spec({ confirmTimeoutSec: 60 })));
    const report = await finalReport(1, 60_000);
    assert.equal(openwrtOf(report)!.state, SectionState.SECTION_STATE_IN_SYNC, openwrtOf(report)!.error);
    await agent.waitForLine(/change confirmed.*section=openwrt/);
    assert.ok(!existsSync(intent(w.dev.root)));
    assert.deepEqual(names(w.owrt.links()), ['br-lan', 'eth0', 'eth1', 'lo']);
  });

  it('not acknowledged within confirmTimeoutSec: the host side and the UCI config are put back by themselves', async (t) => {
    const { w, controller, start, finalReport } = await setup(t);
    const host = w.hostSnapshot();
    const uci = w.uciSnapshot();
    start();
    await controller.waitForSession();
    controller.autoAck = false;
    controller.send(desired(1, w.spec({ confirmTimeoutSec: CONFIRM_SEC })));
    await controller.waitFor('the container wired', () => names(w.owrt.links()).includes('eth1'), 60_000);
    const report = await finalReport(1, 90_000);
    assert.equal(openwrtOf(report)!.state, SectionState.SECTION_STATE_REVERTED);
    assert.match(openwrtOf(report)!.error, new RegExp(`not confirmed: the controller was not reachable within ${CONFIRM_SEC} s after the change; the previous state was restored`));
    assert.deepEqual(w.hostSnapshot(), host);
    assert.deepEqual(w.uciSnapshot(), uci);
    assert.deepEqual(names(w.owrt.links()), ['br-lan', 'lo']);
    assert.ok(!existsSync(intent(w.dev.root)));
  });

  it('an agent killed inside the window undoes the change when it starts again, before it connects', async (t) => {
    const { w, controller, start, finalReport } = await setup(t);
    const host = w.hostSnapshot();
    const uci = w.uciSnapshot();
    const first = start({ IBEX_AGENT_FAILPOINTS: 'awaiting-confirmation' });
    await controller.waitForSession();
    controller.send(desired(1, w.spec({ confirmTimeoutSec: 60 })));
    assert.equal((await first.exitedWithin()).signal, 'SIGKILL');
    assert.ok(existsSync(intent(w.dev.root)), 'the awaiting intent is on disk');
    assert.ok(names(w.owrt.links()).includes('eth1'), 'the change was applied');

    const second = start();
    await second.waitForLine(/reverting a change that was never confirmed.*section=openwrt/, 30_000);
    const report = await finalReport(1, 60_000);
    assert.equal(openwrtOf(report)!.state, SectionState.SECTION_STATE_REVERTED);
    assert.match(openwrtOf(report)!.error, /not confirmed: the agent restarted while the change awaited confirmation/);
    assert.deepEqual(w.hostSnapshot(), host);
    assert.deepEqual(w.uciSnapshot(), uci);
    assert.ok(!existsSync(intent(w.dev.root)));
  });
});
