import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ArchResult, median, missedTargets, parseFlags, parseMemory, welcomeTime } from './agent-footprint-report.js';

const status = `Name:\tibex-agent
VmHWM:\t   70000 kB
VmRSS:\t   65536 kB
RssAnon:\t   20480 kB
RssFile:\t   45056 kB
RssShmem:\t       0 kB
`;
const rollup = `00400000-7ffd0000 ---p 00000000 00:00 0    [rollup]
Rss:               65536 kB
Pss:               61440 kB
Pss_Anon:          20480 kB
Pss_File:          40960 kB
`;

function result(patch: Partial<ArchResult> = {}): ArchResult {
  return {
    arch: 'x64',
    emulated: false,
    nodeVersion: '24.21.0',
    binaryMiB: 122.5,
    binaryXzMiB: 28.6,
    stockNodeMiB: 120.7,
    addedMiB: 1.8,
    helloMs: [200, 250, 300],
    welcomeMs: [210, 260, 310],
    helloMedianMs: 250,
    welcomeMedianMs: 260,
    warmHelloMs: [],
    warmWelcomeMs: [],
    warmHelloMedianMs: NaN,
    memory: { rssMiB: 45, anonMiB: 18, fileMiB: 27, peakMiB: 50, pssMiB: 44, pssAnonMiB: 18 },
    ...patch,
  };
}

describe('bench:agent-footprint report', () => {
  it('parses /proc status and smaps_rollup into MiB, naming a missing field', () => {
    assert.deepEqual(parseMemory(status, rollup), { rssMiB: 64, anonMiB: 20, fileMiB: 44, peakMiB: 70000 / 1024, pssMiB: 60, pssAnonMiB: 20 });
    assert.throws(() => parseMemory(status.replace(/^RssAnon.*$/m, ''), rollup), /no RssAnon line in \/proc\/PID\/status/);
    assert.throws(() => parseMemory(status, 'Rss: 1 kB\n'), /no Pss line in \/proc\/PID\/smaps_rollup/);
  });

  it('takes the middle value, or the mean of the two middle ones', () => {
    assert.equal(median([300, 100, 200]), 200);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  it('names each missed target; memory and start of an emulated run are not judged', () => {
    assert.deepEqual(missedTargets([result()]), []);
    const missed = missedTargets([result({ helloMedianMs: 301, addedMiB: 3.5, memory: { rssMiB: 64, anonMiB: 20.5, fileMiB: 44, peakMiB: 70, pssMiB: 60, pssAnonMiB: 20 } })]);
    assert.deepEqual(missed, [
      'x64: the agent adds 3.5 MiB to the stock node binary (target 3)',
      'x64: idle RSS 64.0 MiB (target 50)',
      'x64: anonymous memory 20.5 MiB (target 20)',
      'x64: start to first heartbeat 301 ms (target 300)',
    ]);
    assert.deepEqual(missedTargets([result({ arch: 'arm64', emulated: true, helloMedianMs: 4000, memory: undefined })]), []);
  });

  it('reads the time of the Welcome from the agent\'s JSON log', () => {
    const logs = '{"ts":"2026-12-03T18:46:07.406Z","level":"info","msg":"agent started"}\nnot json\n{"ts":"2026-12-03T18:46:07.476Z","level":"info","msg":"connected to the controller","target":"x"}\n';
    assert.equal(welcomeTime(logs), Date.parse('2026-12-03T18:46:07.476Z'));
    assert.equal(welcomeTime(logs.split('\n')[0]!), undefined);
  });

  it('parses flags strictly: architectures, counts, and arm64 by default only with qemu', () => {
    assert.deepEqual(parseFlags([], false).archs, ['x64']);
    assert.deepEqual(parseFlags([], true).archs, ['x64', 'arm64']);
    const f = parseFlags(['--arch', 'arm64', '--runs', '5', '--idle-s', '30', '--warm', '--no-xz', '--agent-log', '/tmp/a.jsonl'], false);
    assert.deepEqual([f.archs, f.runs, f.idleS, f.warm, f.xz, f.agentLog], [['arm64'], 5, 30, true, false, '/tmp/a.jsonl']);
    assert.throws(() => parseFlags(['--arch', 'riscv64'], false), /--arch: unknown architecture "riscv64"/);
    assert.throws(() => parseFlags(['--runs', '0'], false), /--runs must be a whole number 1-100/);
    assert.throws(() => parseFlags(['--idle-s'], false), /--idle-s must be a whole number/);
    assert.throws(() => parseFlags(['--fast'], false), /unknown flag --fast/);
  });
});
