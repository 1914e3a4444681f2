import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { ServerCredentials, status as grpcStatus } from '@grpc/grpc-js';
import { factsSchema } from '@ibex/spec';
import { AgentProcess, runAgent, scratchRoot } from '../testing/agent-process.js';
import { ScriptedController } from '../testing/scripted-controller.js';
import { type AgentFixture, agentFixture } from '../testing/fixtures.js';
import { waitFor } from '../testing/wait.js';
import { AGENT_VERSION } from '../version.js';

describe('agent <-> controller stream', () => {
  let fx: AgentFixture | undefined;
  afterEach(async () => {
    await fx?.cleanup();
    fx = undefined;
  });

  it('sends Hello first, then heartbeats at the Welcome interval, and stops cleanly on SIGTERM', async () => {
    fx = await agentFixture({ heartbeatIntervalMs: 100 });
    const agent = fx.startAgent();
    const s = await fx.controller.waitForSession();
    assert.equal(s.authorization, 'Bearer ibxd_dev-1_secret');
    const first = fx.controller.received.find((r) => r.session === s.index);
    assert.equal(first?.msg.$case, 'hello');
    const hello = s.hello!;
    assert.equal(hello.agentVersion, AGENT_VERSION);
    assert.match(hello.bootId, /^[0-9a-f-]{36}$/);
    assert.equal(hello.lastAppliedRevision, 0);
    assert.equal(hello.lastReceivedRevision, 0);
    assert.deepEqual(hello.unfinishedJobs, []);
    assert.equal(factsSchema.safeParse(hello.facts).success, true);
    assert.ok(hello.facts!.hostname.length > 0);

    const beats = await fx.controller.waitFor('3 heartbeats', () => {
      const h = fx!.controller.ofKind('heartbeat');
      return h.length >= 3 && h;
    });
    const seqs = beats.map((b) => (b.msg.$case === 'heartbeat' ? b.msg.value.seq : -1));
    assert.deepEqual(seqs.slice(0, 3), [1, 2, 3]);
    const gap = beats[2]!.at - beats[1]!.at;
    assert.ok(gap >= 50 && gap < 1000, `heartbeat gap ${gap} ms for a 100 ms interval`);

    const status = JSON.parse((await runAgent(['status', '--json', '--root', fx.root])).stdout);
    assert.equal(status.running, true);
    assert.equal(status.connected, true);
    assert.equal(status.deviceId, 'dev-1');

    const exit = await agent.stop();
    assert.equal(exit.code, 0, agent.lines.join('\n'));
    await waitFor('the session to end', () => s.ended);
    const after = JSON.parse((await runAgent(['status', '--json', '--root', fx.root])).stdout);
    assert.equal(after.running, false);
    assert.equal(after.connected, false);
  });

  it('reconnects within the backoff after the controller restarts, with a new Hello', async () => {
    fx = await agentFixture();
    const agent = fx.startAgent();
    const first = await fx.controller.waitForSession();
    const bootId = first.hello!.bootId;
    const restarted = await fx.restartController();
    const t0 = Date.now();
    const again = await restarted.waitForSession(0, 10_000);
    // First retry waits at most 1 s, the second at most 2 s (full jitter), plus connect time.
    assert.ok(Date.now() - t0 < 5000, `reconnected after ${Date.now() - t0} ms`);
    assert.equal(again.hello!.bootId, bootId, 'same process, same boot id');
    await agent.waitForLine(/stream to the controller ended/);
  });

  it('spreads its first reconnect over the Welcome\'s reconnect window once a welcomed stream breaks', async () => {
    fx = await agentFixture();
    // Past what the agent follows (1 h; a timer overflows past 2^31 ms): it waits in [0, 1 h),
    // where without the window the first retry after a Welcome waits under 1 s. A wait under 2 s
    // has a chance of 1 in 1,800 with the window.
    fx.controller.reconnectWindowMs = 4_000_000_000;
    const agent = fx.startAgent();
    await fx.controller.waitForSession();
    fx.controller.endCurrent(grpcStatus.UNAVAILABLE, 'the controller went away');
    await agent.waitForLine(/stream to the controller ended/);
    const status = await waitFor('status with the next retry', async () => {
      const s = JSON.parse((await runAgent(['status', '--json', '--root', fx!.root])).stdout);
      return !s.connected && s.nextRetryAtMs && s;
    });
    const inMs = status.nextRetryAtMs - Date.now();
    assert.ok(inMs > 2000 && inMs <= 3_600_000, `next retry in ${inMs} ms`);
    assert.equal(fx.controller.sessions.length, 1, 'it did not come back at once');
  });

  it('shows a refused credential in status and keeps retrying at the longest backoff', async () => {
    fx = await agentFixture();
    fx.controller.refuse = { code: grpcStatus.UNAUTHENTICATED, details: 'device revoked or unknown: re-enroll' };
    const agent = fx.startAgent();
    await agent.waitForLine(/refused this device: device revoked or unknown: re-enroll/);
    const status = await waitFor('status with the refusal', async () => {
      const s = JSON.parse((await runAgent(['status', '--json', '--root', fx!.root])).stdout);
      return s.credentialRefused && s;
    });
    assert.equal(status.connected, false);
    assert.match(status.lastError, /device revoked or unknown: re-enroll/);
    // Longest backoff: between 30 and 60 s from now.
    assert.ok(status.nextRetryAtMs - Date.now() > 25_000, `next retry in ${status.nextRetryAtMs - Date.now()} ms`);
    const text = (await runAgent(['status', '--root', fx.root])).stdout;
    assert.match(text, /device revoked or unknown: re-enroll/);
    assert.equal(fx.controller.sessions.length, 1, 'no fast retry loop');
  });

  it('waits at least as long as the controller says when it rate-limits failed attempts', async () => {
    fx = await agentFixture();
    fx.controller.refuse = { code: grpcStatus.RESOURCE_EXHAUSTED, details: 'too many failed attempts (10 failed attempts with this device credential or certificate in the last 60 s); wait 90 s, then retry with a valid token' };
    const agent = fx.startAgent();
    await agent.waitForLine(/refuses attempts for now/);
    const status = await waitFor('status with the refusal', async () => {
      const s = JSON.parse((await runAgent(['status', '--json', '--root', fx!.root])).stdout);
      return s.lastError && s;
    });
    assert.equal(status.credentialRefused, false, 'a rate limit is not a revoked credential');
    assert.match(status.lastError, /RESOURCE_EXHAUSTED: too many failed attempts/);
    assert.ok(status.nextRetryAtMs - Date.now() > 85_000, `next retry in ${status.nextRetryAtMs - Date.now()} ms`);
    assert.equal(fx.controller.sessions.length, 1, 'no fast retry loop');
  });

  it('refuses to run without an enrollment, naming the next step', async () => {
    fx = await agentFixture();
    const r = await runAgent(['run', '--root', fx.root, '--data-dir', join(fx.root, 'elsewhere')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not enrolled .*ibex-agent enroll --controller URL --token TOKEN/);
    assert.throws(() => readFileSync(join(fx!.root, 'elsewhere', 'status.json')));
  });

  it('enrolls and connects over TLS (grpcs://) trusting the CA given with --ca', async (t) => {
    const scratch = scratchRoot('ibex-agent-tls-');
    const key = join(scratch.root, 'key.pem');
    const cert = join(scratch.root, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=ibex-test', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const server = await ScriptedController.start({ credentials: ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(cert), private_key: readFileSync(key) }], false) });
    let agent: AgentProcess | undefined;
    t.after(async () => {
      await agent?.kill();
      await server.stop();
      scratch.cleanup();
    });
    const url = `grpcs://127.0.0.1:${server.port}`;
    const untrusted = await runAgent(['enroll', '--controller', url, '--token', 'ibxe_t', '--root', scratch.root]);
    assert.equal(untrusted.code, 1, 'a certificate nobody vouched for is refused');
    assert.match(untrusted.stderr, /cannot reach the controller .*--ca/);
    const enrolled = await runAgent(['enroll', '--controller', url, '--token', 'ibxe_t', '--ca', cert, '--root', scratch.root]);
    assert.equal(enrolled.code, 0, enrolled.stderr);
    // `run` finds the controller and the CA in the credential.
    agent = AgentProcess.start(['run', '--root', scratch.root]);
    const s = await server.waitForSession();
    assert.equal(s.authorization, 'Bearer ibxd_dev-1_secret');
    await agent.waitForLine(/connected to the controller/);
  });
});
