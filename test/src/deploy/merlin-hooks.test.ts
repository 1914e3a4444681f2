// The Asuswrt-Merlin hooks, run the way the router runs them: BusyBox sh, a JFFS folder (a
// scratch one here, through --jffs) that already holds other tools' lines, and the hook scripts
// called with the mount point as $1. The agent is a stand-in script that records its arguments.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { alive, merlinDir, requireTool, run, scratch, show, waitFor } from './support.js';

const BEGIN = '# >>> ibex-agent >>>';
const END = '# <<< ibex-agent <<<';
const installer = join(merlinDir, 'install-hooks.sh');

// What Entware's installer (entware-setup.sh) leaves in post-mount.
const ENTWARE_POST_MOUNT = [
  '#!/bin/sh',
  'if [ "$1" = "/tmp/mnt/sda1" ] ; then',
  '  ln -nsf $1/entware /tmp/opt',
  'fi',
  '',
].join('\n');
// An `exit` in the middle: the block must run before it.
const USER_UNMOUNT = ['#!/bin/sh', 'swapoff -a 2>/dev/null', 'exit 0', 'echo never reached', ''].join('\n');

function count(text: string, line: string): number {
  return text.split('\n').filter((l) => l === line).length;
}

describe('merlin install-hooks.sh', () => {
  let busybox: string;
  let root: { dir: string; cleanup: () => void };
  // Spaces and a quote in every path: the blocks must quote them.
  let jffs: string;
  let mount: string;
  let runDir: string;
  let calls: string;
  let bbShell: string;

  const hook = (name: string) => join(jffs, 'scripts', name);
  const read = (name: string) => readFileSync(hook(name), 'utf8');
  const install = (...extra: string[]) =>
    run(busybox, ['sh', installer, '--jffs', jffs, '--mount', mount, '--run-dir', runDir, '--args', '--log-level debug', ...extra]);
  const env = () => ({ IBEX_MERLIN_SH: bbShell });
  const pidIn = (file: string) => (existsSync(join(runDir, file)) ? Number(readFileSync(join(runDir, file), 'utf8').trim()) : undefined);

  before(() => {
    busybox = requireTool('busybox', 'busybox-static');
    root = scratch('merlin');
    jffs = join(root.dir, "jffs it's");
    mount = join(root.dir, 'mnt', 'USB disk');
    runDir = join(root.dir, 'run');
    calls = join(root.dir, 'calls');
    mkdirSync(join(jffs, 'scripts'), { recursive: true });
    mkdirSync(join(mount, 'ibex-agent'), { recursive: true });
    writeFileSync(hook('post-mount'), ENTWARE_POST_MOUNT, { mode: 0o755 });
    writeFileSync(hook('unmount'), USER_UNMOUNT, { mode: 0o755 });
    // services-stop does not exist yet: the installer creates it.
    const agent = join(mount, 'ibex-agent', 'ibex-agent');
    writeFileSync(
      agent,
      [
        '#!/bin/sh',
        `echo "start $$ $*" >> '${calls}'`,
        `trap 'echo "term $$" >> "${calls}"; exit 0' TERM`,
        'while :; do sleep 0.2; done',
        '',
      ].join('\n'),
    );
    chmodSync(agent, 0o755);
    // A `sh` that is BusyBox, so that the background supervisor runs under ash as on the router.
    bbShell = join(root.dir, 'sh');
    symlinkSync(busybox, bbShell);
  });

  after(async () => {
    for (const f of ['supervisor.pid', 'agent.pid']) {
      const pid = pidIn(f);
      if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
    }
    root.cleanup();
  });

  it('adds exactly one block per hook, however often it runs, and keeps what was there', async () => {
    const first = await install();
    assert.equal(first.code, 0, show(first));
    const afterFirst = Object.fromEntries(['post-mount', 'unmount', 'services-stop'].map((h) => [h, read(h)]));
    const second = await install();
    assert.equal(second.code, 0, show(second));

    for (const name of ['post-mount', 'unmount', 'services-stop']) {
      const text = read(name);
      assert.equal(text, afterFirst[name], `${name} changed on the second run`);
      assert.equal(count(text, BEGIN), 1, `${name}:\n${text}`);
      assert.equal(count(text, END), 1, `${name}:\n${text}`);
      assert.ok(text.startsWith('#!/bin/sh\n'), `${name} must start with #!/bin/sh:\n${text}`);
      assert.ok((statSync(hook(name)).mode & 0o111) === 0o111, `${name} must be executable`);
    }
    // Other tools' lines are all still there, in order, outside the block.
    const post = read('post-mount');
    const withoutBlock = post.slice(0, post.indexOf(BEGIN)) + post.slice(post.indexOf(END) + END.length + 1);
    assert.equal(withoutBlock, ENTWARE_POST_MOUNT);
    // The block comes before the user's `exit 0`.
    const unmount = read('unmount');
    assert.ok(unmount.indexOf(END) < unmount.indexOf('exit 0'), unmount);
    assert.match(read('services-stop'), /^#!\/bin\/sh\n# >>> ibex-agent >>>\n/);

    const conf = readFileSync(join(jffs, 'addons', 'ibex-agent', 'agent.conf'), 'utf8');
    assert.match(conf, new RegExp(`^mount=${mount.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    assert.match(conf, /^args=--log-level debug$/m);
    assert.ok((statSync(join(jffs, 'addons', 'ibex-agent', 'ibex-agent.sh')).mode & 0o111) === 0o111);
  });

  it('writes hook scripts that BusyBox sh and POSIX sh both parse', async () => {
    for (const name of ['post-mount', 'unmount', 'services-stop']) {
      for (const [cmd, args] of [
        ['sh', ['-n', hook(name)]],
        [busybox, ['sh', '-n', hook(name)]],
      ] as const) {
        const r = await run(cmd, [...args]);
        assert.equal(r.code, 0, `${cmd} ${args.join(' ')}\n${show(r)}`);
      }
    }
  });

  it('starts the agent from post-mount for its disk only, respawns it, and stops it from unmount', async () => {
    const other = await run(busybox, ['sh', hook('post-mount'), '/tmp/mnt/some-other-disk'], { env: env() });
    assert.equal(other.code, 0, show(other));
    assert.equal(existsSync(calls), false, 'post-mount of another disk must not start the agent');

    const t0 = Date.now();
    // Merlin may pass the mount point with a trailing slash.
    const started = await run(busybox, ['sh', hook('post-mount'), `${mount}/`], { env: env() });
    assert.equal(started.code, 0, show(started));
    assert.ok(Date.now() - t0 < 5000, 'post-mount must return at once, not wait for the agent');
    assert.ok(await waitFor(() => existsSync(calls) && readFileSync(calls, 'utf8').includes('start'), 5000), 'the agent did not start');
    const firstLine = readFileSync(calls, 'utf8').split('\n')[0]!;
    assert.equal(firstLine.replace(/^start \d+ /, ''), `run --data-dir ${join(mount, 'ibex-agent', 'data')} --log-level debug`);
    const supervisor = pidIn('supervisor.pid');
    const firstAgent = pidIn('agent.pid');
    assert.ok(supervisor && alive(supervisor), 'no supervisor running');
    assert.ok(firstAgent && alive(firstAgent), 'no agent running');
    const cmdline = readFileSync(`/proc/${supervisor}/cmdline`, 'utf8').split('\0');
    assert.equal(cmdline[0], bbShell, 'the supervisor should run under BusyBox sh here');

    // A second post-mount (another partition, or the same event twice) starts nothing new.
    const again = await run(busybox, ['sh', hook('post-mount'), mount], { env: env() });
    assert.match(again.stderr, /already running/);
    assert.equal(pidIn('supervisor.pid'), supervisor);

    // The agent dies: the supervisor starts it again (first delay 5 s).
    process.kill(firstAgent, 'SIGKILL');
    assert.ok(await waitFor(() => (pidIn('agent.pid') ?? firstAgent) !== firstAgent && alive(pidIn('agent.pid')!), 12_000), 'the agent was not restarted');
    const secondAgent = pidIn('agent.pid')!;
    const log = readFileSync(join(mount, 'ibex-agent', 'data', 'agent.log'), 'utf8');
    assert.match(log, /agent exited with status \d+ after \d+s; restarting in 5s/);

    // unmount of another disk leaves it running; of its disk stops it before returning.
    await run(busybox, ['sh', hook('unmount'), '/tmp/mnt/some-other-disk'], { env: env() });
    assert.ok(alive(secondAgent));
    const stopped = await run(busybox, ['sh', hook('unmount'), mount], { env: env(), timeoutMs: 40_000 });
    assert.equal(stopped.code, 0, show(stopped));
    assert.equal(alive(secondAgent), false, 'agent still running after unmount');
    assert.equal(alive(supervisor), false, 'supervisor still running after unmount');
    assert.match(readFileSync(calls, 'utf8'), new RegExp(`^term ${secondAgent}$`, 'm'), 'the agent was not stopped with SIGTERM');
    assert.equal(existsSync(join(runDir, 'supervisor.pid')), false);

    // services-stop with nothing running is fine.
    const idle = await run(busybox, ['sh', hook('services-stop')], { env: env() });
    assert.equal(idle.code, 0, show(idle));
  });

  it('stops the agent from services-stop', async () => {
    const started = await run(busybox, ['sh', hook('post-mount'), mount], { env: env() });
    assert.equal(started.code, 0, show(started));
    assert.ok(await waitFor(() => !!pidIn('agent.pid') && alive(pidIn('agent.pid')!), 5000));
    const agent = pidIn('agent.pid')!;
    const r = await run(busybox, ['sh', hook('services-stop')], { env: env(), timeoutMs: 40_000 });
    assert.equal(r.code, 0, show(r));
    assert.equal(alive(agent), false);
  });

  it('refuses a hook whose block lost its end marker, and leaves it untouched', async () => {
    const broken = join(root.dir, 'broken-jffs');
    mkdirSync(join(broken, 'scripts'), { recursive: true });
    const text = `#!/bin/sh\n${BEGIN}\necho half a block\n`;
    writeFileSync(join(broken, 'scripts', 'post-mount'), text, { mode: 0o755 });
    const r = await run(busybox, ['sh', installer, '--jffs', broken, '--mount', mount]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /fix it by hand/);
    assert.equal(readFileSync(join(broken, 'scripts', 'post-mount'), 'utf8'), text);
  });

  it('refuses bad arguments with a message naming them', async () => {
    const noMount = await run(busybox, ['sh', installer, '--jffs', jffs]);
    assert.equal(noMount.code, 1);
    assert.match(noMount.stderr, /--mount is required/);
    const relative = await run(busybox, ['sh', installer, '--jffs', jffs, '--mount', 'tmp/mnt/sda1']);
    assert.equal(relative.code, 1);
    assert.match(relative.stderr, /--mount must be an absolute path/);
    const noJffs = await run(busybox, ['sh', installer, '--jffs', join(root.dir, 'missing'), '--mount', mount]);
    assert.equal(noJffs.code, 1);
    assert.match(noJffs.stderr, /does not exist/);
  });

  it('uninstalls exactly its blocks and files, twice without harm', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await run(busybox, ['sh', installer, '--jffs', jffs, '--uninstall']);
      assert.equal(r.code, 0, show(r));
      assert.equal(read('post-mount'), ENTWARE_POST_MOUNT);
      assert.equal(read('unmount'), USER_UNMOUNT);
      // The installer created services-stop; only its shebang is left.
      assert.equal(read('services-stop'), '#!/bin/sh\n');
      assert.equal(existsSync(join(jffs, 'addons', 'ibex-agent')), false);
    }
  });
});
