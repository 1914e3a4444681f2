// The agent's service files: the systemd unit is verified by systemd itself where
// systemd-analyze exists, the OpenRC script is sourced the way openrc-run sources it, and both
// are checked for the options that would break what the agent does as root.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { agentDir, merlinDir, requireTool, run, scratch, show, which } from './support.js';

type Unit = Map<string, Map<string, string[]>>;

/** systemd unit syntax: [Section], Key=Value (repeatable), # and ; comments. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      section = new Map();
      unit.set(head[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(section && eq > 0, `not a unit line: ${line}`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return unit;
}

const get = (unit: Unit, section: string, key: string) => unit.get(section)?.get(key)?.at(-1);

const unitPath = join(agentDir, 'ibex-agent.service');
const openrcPath = join(agentDir, 'ibex-agent.openrc');

describe('systemd unit ibex-agent.service', () => {
  const unit = parseUnit(readFileSync(unitPath, 'utf8'));

  it('restarts the agent forever and runs `ibex-agent run` from /usr/local/bin', () => {
    assert.equal(get(unit, 'Service', 'Restart'), 'always');
    assert.match(get(unit, 'Service', 'RestartSec') ?? '', /^\d+s?$/);
    assert.equal(get(unit, 'Unit', 'StartLimitIntervalSec'), '0', 'without it systemd gives up after 5 quick restarts');
    assert.equal(get(unit, 'Service', 'ExecStart'), '/usr/local/bin/ibex-agent run');
    // The agent's default data directory is the one systemd creates private to root.
    assert.equal(get(unit, 'Service', 'StateDirectory'), 'ibex-agent');
    assert.equal(get(unit, 'Install', 'WantedBy'), 'multi-user.target');
    assert.equal(get(unit, 'Service', 'StateDirectoryMode'), '0700');
    const backoff = parseUnit(readFileSync(join(agentDir, 'restart-backoff.conf'), 'utf8'));
    assert.ok(get(backoff, 'Service', 'RestartSteps'));
    assert.ok(get(backoff, 'Service', 'RestartMaxDelaySec'));
  });

  it('does not wait for or require the network it may have to repair', () => {
    for (const key of ['Requires', 'BindsTo', 'Requisite']) {
      assert.doesNotMatch(get(unit, 'Unit', key) ?? '', /network/, `${key}= must not name a network target`);
    }
    assert.doesNotMatch(get(unit, 'Unit', 'After') ?? '', /network-online/);
  });

  it('leaves off every sandboxing option that would stop it mounting, namespacing or starting daemons', () => {
    // Options that put the service in its own mount namespace (its mounts would not reach the
    // host), or that its children inherit. Each must be absent or explicitly off.
    const harmful = [
      'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'PrivateMounts', 'PrivateNetwork', 'PrivateUsers',
      'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectKernelLogs', 'ProtectControlGroups', 'ProtectClock', 'ProtectProc',
      'ProtectHostname', 'ReadOnlyPaths', 'InaccessiblePaths', 'TemporaryFileSystem', 'NoNewPrivileges', 'SystemCallFilter',
      'SystemCallArchitectures', 'RestrictNamespaces', 'RestrictAddressFamilies', 'RestrictSUIDSGID', 'LockPersonality',
      'MemoryDenyWriteExecute', 'CapabilityBoundingSet', 'DynamicUser', 'User', 'MountFlags',
    ];
    for (const key of harmful) {
      const value = get(unit, 'Service', key);
      assert.ok(value === undefined || value === 'no' || value === 'false', `${key}=${value} would break the agent`);
    }
    // Stopping the agent must not kill the daemons it started (udhcpc, chroot services).
    assert.equal(get(unit, 'Service', 'KillMode'), 'process');
  });

  it('passes systemd-analyze verify', { skip: !which('systemd-analyze') && 'systemd-analyze is not installed' }, async () => {
    const tmp = scratch('unit');
    try {
      // verify checks that ExecStart exists: point it at a real executable.
      const copy = join(tmp.dir, 'ibex-agent.service');
      const realBinary = which('true')!;
      writeFileSync(copy, readFileSync(unitPath, 'utf8').replaceAll('/usr/local/bin/ibex-agent', realBinary));
      const r = await run('systemd-analyze', ['verify', '--man=no', copy]);
      assert.equal(r.code, 0, show(r));
      // Unknown keys are only warnings; this unit must not have any. Warnings about the host's own
      // units it pulls in (ifupdown-ng's networking.service has an ExecRestart) are not ours.
      const ours = r.stderr.split('\n').filter((l) => l.trim() && !/^\/(lib|usr\/lib|etc)\/systemd\//.test(l));
      assert.deepEqual(ours, [], r.stderr);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('OpenRC script ibex-agent.openrc', () => {
  const text = readFileSync(openrcPath, 'utf8');

  it('is an openrc-run script that sh and BusyBox sh parse', async () => {
    assert.ok(text.startsWith('#!/sbin/openrc-run\n'));
    const busybox = requireTool('busybox', 'busybox-static');
    for (const [cmd, args] of [
      ['sh', ['-n', openrcPath]],
      [busybox, ['sh', '-n', openrcPath]],
    ] as const) {
      const r = await run(cmd, [...args]);
      assert.equal(r.code, 0, show(r));
    }
  });

  it('supervises `ibex-agent run` with respawn, using (not needing) the network', async () => {
    // openrc-run sources the script with its helpers defined; stand-ins print what is declared.
    const probe = [
      'use() { echo "use $*"; }',
      'need() { echo "need $*"; }',
      'after() { echo "after $*"; }',
      'before() { echo "before $*"; }',
      'checkpath() { echo "checkpath $*"; }',
      '. "$1"',
      'printf "supervisor=%s\\ncommand=%s\\ncommand_args=%s\\nrespawn_max=%s\\nrespawn_delay=%s\\n" "$supervisor" "$command" "$command_args" "$respawn_max" "$respawn_delay"',
      'depend',
      'start_pre',
    ].join('\n');
    const r = await run('sh', ['-c', probe, 'sh', openrcPath], { env: { IBEX_OPTS: '--log-level debug', IBEX_DATA_DIR: undefined } });
    assert.equal(r.code, 0, show(r));
    const out = r.stdout;
    assert.match(out, /^supervisor=supervise-daemon$/m);
    assert.match(out, /^command=\/usr\/local\/bin\/ibex-agent$/m);
    assert.match(out, /^command_args=run --data-dir \/var\/lib\/ibex-agent --log-level debug$/m);
    assert.match(out, /^respawn_max=0$/m, 'respawn_max=0: never stop respawning');
    assert.match(out, /^respawn_delay=\d+$/m);
    assert.match(out, /^use .*\bnet\b/m);
    assert.match(out, /^after .*\bnet\b/m);
    assert.doesNotMatch(out, /^need .*\bnet\b/m, 'need net would keep the agent down when the network fails');
    assert.match(out, /^checkpath --directory --mode 0700 .* \/var\/lib\/ibex-agent$/m);
  });
});

describe('shell scripts in deploy/agent', () => {
  it('parse under sh -n and busybox sh -n', async () => {
    const busybox = requireTool('busybox', 'busybox-static');
    const files = [join(agentDir, 'install.sh'), join(merlinDir, 'install-hooks.sh'), join(merlinDir, 'ibex-agent-merlin.sh')];
    for (const file of files) {
      assert.ok(readFileSync(file, 'utf8').startsWith('#!/bin/sh\n'), `${file} must start with #!/bin/sh`);
      for (const [cmd, args] of [
        ['sh', ['-n', file]],
        [busybox, ['sh', '-n', file]],
      ] as const) {
        const r = await run(cmd, [...args]);
        assert.equal(r.code, 0, `${cmd} ${args.join(' ')}\n${show(r)}`);
      }
    }
  });
});
