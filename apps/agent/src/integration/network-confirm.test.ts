import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { JobOutcome, SectionState, type StateReport } from '@ibex/proto';
import { writeCredential } from '../journal/credential.js';
import { AgentProcess, runAgent } from '../testing/agent-process.js';
import { TEST_CREDENTIAL } from '../testing/fixtures.js';
import { NetnsDevice, sh } from '../testing/netns-device.js';
import { ScriptedController } from '../testing/scripted-controller.js';

/**
 * Confirmation of network changes, end to end on the agent side: the agent runs inside a device
 * network namespace and reaches a scripted controller over a veth whose device end the network
 * section configures. A change that moves the device's address off that link cuts it off; the
 * agent must put the old configuration back by itself.
 */

/** The deadline of changes expected to revert (short, so the tests are quick). */
const CONFIRM_SEC = 4;
/** The deadline of changes expected to be confirmed: long enough for a loaded machine. */
const GENEROUS_SEC = 30;

const ctlSpec = (address: string, extra: Record<string, unknown> = {}, confirmTimeoutSec = CONFIRM_SEC) => ({
  network: {
    interfaces: [
      { name: 'lo', method: 'loopback' },
      { name: 'ctl0', method: 'static', addresses: [`${address}/30`], ...extra },
    ],
    confirmTimeoutSec,
  },
});

const desired = (revision: number, s: unknown) => ({ $case: 'desired', value: { revision, specJson: JSON.stringify(s), createdAtMs: Date.now() } }) as const;
const networkOf = (r: StateReport) => r.sections.find((s) => s.section === 'network');

async function setup(t: { after: (fn: () => unknown) => void }) {
  const dev = NetnsDevice.create();
  const agents: AgentProcess[] = [];
  let controller: ScriptedController | undefined;
  // One cleanup, in order: the agents, the controller, then the namespaces and the scratch root.
  t.after(async () => {
    await Promise.all(agents.map((a) => a.kill()));
    await controller?.stop();
    dev.destroy();
  });
  const link = dev.addHostLink('ctl0');
  controller = await ScriptedController.start({ credential: TEST_CREDENTIAL, host: link.hostIp });
  writeCredential(join(dev.dataDir, 'credential.json'), { deviceId: 'dev-1', deviceName: 'device-one', credential: TEST_CREDENTIAL, controller: controller.url, labels: {}, enrolledAtMs: Date.now() });
  // The device's starting configuration, applied locally (no controller yet).
  const initial = join(dev.root, 'initial.json');
  writeFileSync(initial, JSON.stringify(ctlSpec(link.deviceIp)));
  const r = await runAgent(['apply', '--spec', initial, '--root', dev.root], {}, 60_000, dev.prefix);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual(dev.ipv4Of('ctl0'), [`${link.deviceIp}/30`]);
  const start = (env: Record<string, string> = {}) => {
    const a = AgentProcess.start(['run', '--root', dev.root, '--log-level', 'debug'], env, dev.prefix);
    agents.push(a);
    return a;
  };
  return { dev, link, controller, start };
}

const finalNetworkReport = (controller: ScriptedController, revision: number, timeoutMs: number) =>
  controller.waitFor(
    `a final network report for revision ${revision}`,
    () => controller.stateReports().find((r) => r.revision === revision && networkOf(r) && networkOf(r)!.state !== SectionState.SECTION_STATE_APPLYING),
    timeoutMs,
  );

describe('network changes confirm themselves or revert', () => {
  it('a change that keeps the controller reachable is confirmed by the Ack and ends in sync', async (t) => {
    const { dev, link, controller, start } = await setup(t);
    const agent = start();
    await controller.waitForSession();
    controller.send(desired(1, ctlSpec(link.deviceIp, { mtu: 1400 }, GENEROUS_SEC)));
    const report = await finalNetworkReport(controller, 1, 30_000);
    assert.equal(networkOf(report)!.state, SectionState.SECTION_STATE_IN_SYNC, networkOf(report)!.error);
    const applying = controller.stateReports().find((r) => r.revision === 1 && networkOf(r)?.state === SectionState.SECTION_STATE_APPLYING && JSON.parse(networkOf(r)!.detailJson).awaitingConfirmationUntilMs);
    assert.ok(applying, 'an APPLYING report awaiting confirmation came first');
    assert.match(JSON.parse(networkOf(applying)!.detailJson).detail, /awaiting confirmation until/);
    assert.ok(dev.addrs().find((l) => l.ifname === 'ctl0')!.flags.includes('UP'));
    assert.ok(!existsSync(join(dev.dataDir, 'intents/network.json')), 'the intent is cleared once confirmed');
    await agent.waitForLine(/change confirmed/);
  });

  it('is confirmed by the Ack of the report re-sent after reconnecting when the stream broke', async (t) => {
    const { dev, link, controller, start } = await setup(t);
    const agent = start();
    await controller.waitForSession();
    controller.autoAck = false;
    controller.send(desired(1, ctlSpec(link.deviceIp, { mtu: 1300 }, GENEROUS_SEC)));
    const awaiting = await awaitingReport(controller, 1);
    // The stream breaks before the controller acknowledged anything; the agent reconnects and
    // re-sends the same report after the Welcome, and this time it is acknowledged.
    const sessions = controller.sessions.length;
    controller.endCurrent();
    controller.autoAck = true;
    await controller.waitForSession(sessions, 20_000);
    const report = await finalNetworkReport(controller, 1, 30_000);
    assert.equal(networkOf(report)!.state, SectionState.SECTION_STATE_IN_SYNC, networkOf(report)!.error);
    assert.ok(controller.stateReports().some((r) => r.reportId === awaiting.reportId && r.session > awaiting.session), 'the awaiting report was re-sent on the new stream');
    await agent.waitForLine(/change confirmed/);
    assert.equal(dev.link('ctl0')?.flags.includes('UP'), true);
  });

  it('a state.apply job waiting behind a pass that awaits confirmation ends CANCELLED at once when cancelled, never running its pass', async (t) => {
    const { controller, link, start } = await setup(t);
    const agent = start();
    await controller.waitForSession();
    controller.autoAck = false;
    controller.send(desired(1, ctlSpec(link.deviceIp, { mtu: 1300 }, GENEROUS_SEC)));
    const awaiting = await awaitingReport(controller, 1);
    // The automatic pass holds the device until the report is acknowledged (up to 30 s).
    const resultOf = (jobId: string) => controller.jobUpdates(jobId).find((u) => u.update?.$case === 'result');
    controller.send({ $case: 'assign', value: { jobId: 'job-wait', attempt: 1, type: 'state.apply', paramsJson: '{}', timeoutMs: 60_000, createdAtMs: Date.now() } });
    await agent.waitForLine(/job running .*jobId=job-wait/);
    const cancelledAt = Date.now();
    controller.send({ $case: 'cancel', value: { jobId: 'job-wait', reason: 'operator changed their mind' } });
    const r = await controller.waitFor('the cancelled result while the pass still awaits confirmation', () => resultOf('job-wait'), 10_000);
    assert.ok(Date.now() - cancelledAt < 10_000);
    if (r.update?.$case !== 'result') throw new Error('not a result');
    assert.equal(r.update.value.outcome, JobOutcome.JOB_OUTCOME_CANCELLED, r.update.value.error);
    assert.match(r.update.value.error, /operator changed their mind/);
    assert.equal(agent.count(/change confirmed/), 0, 'the result came before the running pass ended');
    // A job that times out while waiting ends the same way.
    controller.send({ $case: 'assign', value: { jobId: 'job-late', attempt: 1, type: 'state.apply', paramsJson: '{}', timeoutMs: 1_000, createdAtMs: Date.now() } });
    const late = await controller.waitFor('the timed-out result', () => resultOf('job-late'), 10_000);
    assert.equal(late.update?.$case === 'result' && late.update.value.error, 'timed out after 1000 ms');
    assert.equal(agent.count(/change confirmed/), 0);
    // Confirm the change: the automatic pass ends, and no pass of either job runs after it.
    controller.autoAck = true;
    controller.ack(awaiting.reportId);
    await agent.waitForLine(/change confirmed/);
    await new Promise((r) => setTimeout(r, 1500));
    const reports = controller.stateReports();
    const later = reports.slice(reports.findIndex((s) => s.reportId === awaiting.reportId) + 1);
    assert.deepEqual(
      later.map((s) => networkOf(s)?.state),
      [SectionState.SECTION_STATE_IN_SYNC],
      'only the confirmed report of the automatic pass follows: no pass ran for either job',
    );
  });

  it('is not confirmed by the Ack alone: when a new connection to the controller fails, the change is reverted', async (t) => {
    const { dev, link, controller, start } = await setup(t);
    const agent = start();
    await controller.waitForSession();
    // The open stream keeps working (the Ack comes), but nothing new can connect: at its next
    // reconnection the device would be cut off.
    controller.stopListening();
    controller.send(desired(1, ctlSpec(link.deviceIp, { mtu: 1400 })));
    const report = await finalNetworkReport(controller, 1, (CONFIRM_SEC + 30) * 1000);
    assert.equal(networkOf(report)!.state, SectionState.SECTION_STATE_REVERTED, networkOf(report)!.error);
    assert.match(networkOf(report)!.error, /not confirmed: the controller acknowledged the report over the stream opened before the change, but a new connection to it failed until the deadline .*ECONNREFUSED/);
    assert.ok(controller.received.some((r) => r.msg.$case === 'stateReport' && r.msg.value.revision === 1), 'reports still arrive over the open stream');
    assert.equal(controller.sessions.length, 1, 'the one stream from before the change');
    assert.doesNotMatch(readFileSync(join(dev.root, 'etc/network/interfaces'), 'utf8'), /mtu 1400/, 'the previous configuration is back');
    assert.ok(!existsSync(join(dev.dataDir, 'intents/network.json')));
    await agent.waitForLine(/a new connection failed/);
  });

  it('a change that cuts the device off is reverted within the deadline and reported once it is back', async (t) => {
    const { dev, link, controller, start } = await setup(t);
    start();
    await controller.waitForSession();
    const sentAt = Date.now();
    controller.send(desired(1, ctlSpec(link.otherDeviceIp)));
    // The device moves away: it cannot reach the controller, the controller never sees an Ack'able report.
    await controller.waitFor('the new address on the device', () => dev.ipv4Of('ctl0').includes(`${link.otherDeviceIp}/30`), 20_000);
    await controller.waitFor('the old address back on the device', () => dev.ipv4Of('ctl0').join() === `${link.deviceIp}/30`, (CONFIRM_SEC + 15) * 1000);
    const revertedAfterMs = Date.now() - sentAt;
    assert.ok(revertedAfterMs < (CONFIRM_SEC + 10) * 1000, `reverted after ${revertedAfterMs} ms`);
    const report = await finalNetworkReport(controller, 1, 90_000);
    assert.equal(networkOf(report)!.state, SectionState.SECTION_STATE_REVERTED);
    assert.match(networkOf(report)!.error, new RegExp(`not confirmed: the controller was not reachable within ${CONFIRM_SEC} s after the change; the previous state was restored`));
    assert.ok(!existsSync(join(dev.dataDir, 'intents/network.json')));
  });

  it('an agent killed while awaiting confirmation of a change that cut it off reverts when it starts again', async (t) => {
    const { dev, link, controller, start } = await setup(t);
    const first = start({ IBEX_AGENT_FAILPOINTS: 'awaiting-confirmation' });
    await controller.waitForSession();
    controller.send(desired(1, ctlSpec(link.otherDeviceIp)));
    const exit = await first.exitedWithin();
    assert.equal(exit.signal, 'SIGKILL');
    assert.ok(existsSync(join(dev.dataDir, 'intents/network.json')), 'the awaiting intent is on disk');
    assert.deepEqual(dev.ipv4Of('ctl0'), [`${link.otherDeviceIp}/30`], 'the device is cut off');
    // What a person at the console sees meanwhile.
    const st = await runAgent(['status', '--root', dev.root, '--json']);
    const pending = JSON.parse(st.stdout).pendingConfirmations;
    assert.deepEqual(pending.map((c: { section: string; awaiting: string }) => [c.section, c.awaiting]), [['network', 'confirmation']]);
    assert.ok(pending[0].untilMs > Date.now() - 120_000);
    assert.match((await runAgent(['status', '--root', dev.root])).stdout, /\nconfirmations:\n {2}network: applied, awaiting confirmation until \S+: reverted unless the agent reaches the controller by then\n/);

    // Restarted (a reboot would do the same): it reverts before connecting, so it can connect.
    const second = start();
    await second.waitForLine(/reverting a change that was never confirmed/, 20_000);
    const report = await finalNetworkReport(controller, 1, 30_000);
    assert.equal(networkOf(report)!.state, SectionState.SECTION_STATE_REVERTED);
    assert.match(networkOf(report)!.error, /not confirmed: the agent restarted while the change awaited confirmation/);
    assert.ok(!existsSync(join(dev.dataDir, 'intents/network.json')));
    assert.deepEqual(dev.ipv4Of('ctl0'), [`${link.deviceIp}/30`]);
    // The previous configuration is back, and the agent does not retry the change by itself.
    const plan = await runAgent(['plan', '--spec', join(dev.root, 'initial.json'), '--root', dev.root], {}, 60_000, dev.prefix);
    assert.match(plan.stdout, /network: in sync, nothing to do/);
    const seen = controller.stateReports().length;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(controller.stateReports().slice(seen).filter((r) => networkOf(r)?.state === SectionState.SECTION_STATE_APPLYING).length, 0);
    assert.equal(second.count(/step section=network/), 0, 'the restarted agent ran no network step');
  });

  it('an agent killed after its start-up revert but before the `reverted` report was journaled reports it at the next start and never re-applies the change (issue 15)', async (t) => {
    const { dev, link, controller, start } = await setup(t);
    const first = start({ IBEX_AGENT_FAILPOINTS: 'awaiting-confirmation' });
    await controller.waitForSession();
    controller.send(desired(1, ctlSpec(link.otherDeviceIp)));
    assert.equal((await first.exitedWithin()).signal, 'SIGKILL');
    // The second start reverts, then dies before journaling the report.
    const second = start({ IBEX_AGENT_FAILPOINTS: 'recovered-before-report' });
    assert.equal((await second.exitedWithin()).signal, 'SIGKILL');
    assert.deepEqual(dev.ipv4Of('ctl0'), [`${link.deviceIp}/30`], 'reverted');
    assert.ok(existsSync(join(dev.dataDir, 'intents/network.json')), 'the revert is remembered until it is reported');
    const third = start();
    const report = await finalNetworkReport(controller, 1, 30_000);
    assert.equal(networkOf(report)!.state, SectionState.SECTION_STATE_REVERTED);
    assert.match(networkOf(report)!.error, /not confirmed: the agent restarted while the change awaited confirmation/);
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(third.count(/step section=network/), 0, 'the cutting change was not applied again');
    assert.deepEqual(dev.ipv4Of('ctl0'), [`${link.deviceIp}/30`]);
    assert.ok(!existsSync(join(dev.dataDir, 'intents/network.json')), 'forgotten once reported');
  });

  it('an agent killed after replacing the files but before ifup reverts at start, then applies the change again', async (t) => {
    const { dev, link, controller, start } = await setup(t);
    const first = start({ IBEX_AGENT_FAILPOINTS: 'network-before-ifup' });
    await controller.waitForSession();
    controller.send(desired(1, ctlSpec(link.deviceIp, { mtu: 1400 }, GENEROUS_SEC)));
    assert.equal((await first.exitedWithin()).signal, 'SIGKILL');
    assert.ok(existsSync(join(dev.dataDir, 'intents/network.json')));
    // Half applied: the new file is in place, ctl0 is down.
    assert.equal(dev.link('ctl0')?.flags.includes('UP'), false);

    const second = start();
    await second.waitForLine(/reverting an apply that was interrupted section=network/, 20_000);
    const report = await finalNetworkReport(controller, 1, 30_000);
    assert.equal(networkOf(report)!.state, SectionState.SECTION_STATE_IN_SYNC, networkOf(report)!.error);
    const mtu = (JSON.parse(sh(['ip', '-n', dev.ns, '-j', 'link', 'show', 'ctl0']).stdout) as Array<{ mtu: number; flags: string[] }>)[0]!;
    assert.equal(mtu.mtu, 1400);
    assert.ok(mtu.flags.includes('UP'));
  });
});

/** The first report of `revision` whose network section is APPLYING and awaiting confirmation. */
function awaitingReport(controller: ScriptedController, revision: number) {
  return controller.waitFor(
    'the report awaiting confirmation',
    () => controller.stateReports().find((r) => r.revision === revision && networkOf(r)?.state === SectionState.SECTION_STATE_APPLYING && JSON.parse(networkOf(r)!.detailJson).awaitingConfirmationUntilMs),
    30_000,
  );
}
