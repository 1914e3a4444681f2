// The harness proves itself in CI: a small run against a real controller process, then the
// flag errors a user would hit. Runs in a few seconds.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type { BenchResult } from './bench-report.js';

const entry = fileURLToPath(new URL('./agents.bench.js', import.meta.url));

function runBench(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [entry, ...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('bench:agents', () => {
  it('connects 20 agents to a spawned controller and sees every heartbeat in lastSeenAt', async () => {
    const { code, stdout, stderr } = await runBench(['--agents', '20', '--agent-procs', '2', '--rest-rate', '20', '--heartbeat-ms', '500', '--duration-s', '3', '--report-s', '1', '--json']);
    assert.equal(code, 0, `exit code ${code}\nstderr:\n${stderr}`);
    const r = JSON.parse(stdout) as BenchResult;
    assert.equal(r.ok, true, r.failures.join('\n'));
    assert.equal(r.connect.connected, 20);
    assert.equal(r.steady.connectedEnd, 20);
    assert.equal(r.steady.disconnects, 0);
    // 20 agents every 500 ms for 3 s: about 120 heartbeats; all of them confirmed in time.
    assert.ok(r.lag.heartbeatsSent >= 80, `only ${r.lag.heartbeatsSent} heartbeats sent`);
    assert.equal(r.lag.count, r.lag.heartbeatsSent, 'every heartbeat sent showed in lastSeenAt');
    assert.equal(r.lag.overLimit, 0);
    assert.ok(r.lag.max <= 5000, `lag max ${r.lag.max} ms`);
    assert.ok(r.steady.rssMb && r.steady.rssMb.peak > 0 && r.steady.rssMb.peak < 500, `RSS ${JSON.stringify(r.steady.rssMb)}`);
    assert.ok(r.steady.heartbeatsStoredPerS > 0);
    assert.match(stderr, /BAR MET/);
    // The agents ran in worker processes, over TLS, with the REST load (second half, ~1.5 s at 20/s) beside them.
    assert.equal(r.config.tls, true);
    assert.equal(r.workers?.procs, 2);
    assert.ok(r.rest && r.rest.sent >= 15 && r.rest.ok === r.rest.sent, `REST ${JSON.stringify(r.rest)}`);
  });

  it('fans one desired-state change out to every agent, and gets them all back after the controller is killed', async () => {
    const { code, stdout, stderr } = await runBench(['--agents', '10', '--heartbeat-ms', '500', '--duration-s', '1', '--rest-rate', '0', '--fanout', '--storm', '--json'], 150_000);
    assert.equal(code, 0, `exit ${code}\n${stderr.slice(-3000)}`);
    const r = JSON.parse(stdout) as BenchResult;
    assert.ok(r.fanout, 'a fan-out result');
    assert.equal(r.fanout.received, 10);
    assert.equal(r.fanout.reported, 10);
    assert.equal(r.fanout.results, 10);
    assert.equal(r.fanout.rolloutStatus, 'succeeded');
    assert.ok(r.fanout.allReceivedS !== null && r.fanout.allReceivedS >= r.fanout.firstReceivedS!);
    assert.ok(r.storm, 'a storm result');
    assert.equal(r.storm.back, 10);
    assert.ok(r.storm.allBackS !== null && r.storm.allBackS > r.storm.restartS, `storm ${JSON.stringify(r.storm)}`);
  });

  it('refuses a bad flag with a clear message and exit code 2', async () => {
    const typo = await runBench(['--agnets', '20']);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /unknown flag --agnets/);
    const nan = await runBench(['--agents', 'many']);
    assert.equal(nan.code, 2);
    assert.match(nan.stderr, /--agents must be a whole number from 1 to 20000, got "many"/);
    const partial = await runBench(['--grpc', '127.0.0.1:9090']);
    assert.equal(partial.code, 2);
    assert.match(partial.stderr, /also needs --api, --token, --database-url/);
    const procs = await runBench(['--agents', '2', '--agent-procs', '3']);
    assert.equal(procs.code, 2);
    assert.match(procs.stderr, /--agent-procs 3 is more than --agents 2/);
    const ca = await runBench(['--ca', 'ca.pem']);
    assert.equal(ca.code, 2);
    assert.match(ca.stderr, /--ca applies only to a running controller/);
  });
});
