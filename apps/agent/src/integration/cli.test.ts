import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as grpcStatus } from '@grpc/grpc-js';
import { runAgent, scratchRoot } from '../testing/agent-process.js';
import { ScriptedController } from '../testing/scripted-controller.js';

describe('ibex-agent CLI', () => {
  const scratch = scratchRoot('ibex-agent-cli-');
  const { root } = scratch;
  const specFile = join(root, 'spec.json');
  let controller: ScriptedController;
  before(async () => {
    controller = await ScriptedController.start();
  });
  after(async () => {
    await controller.stop();
    scratch.cleanup();
  });

  it('enroll stores the credential (0600) and refuses to overwrite it without --force', async () => {
    const dataDir = join(root, 'enroll-data');
    const r = await runAgent(['enroll', '--controller', controller.url, '--token', 'ibxe_token', '--name', 'edge-7', '--root', root, '--data-dir', dataDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /enrolled as device-one \(dev-1\)/);
    const req = controller.enrollRequests.at(-1)!;
    assert.equal(req.enrollmentToken, 'ibxe_token');
    assert.equal(req.name, 'edge-7');
    assert.ok(req.facts?.hostname);
    const file = join(dataDir, 'credential.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const cred = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(cred.credential, 'ibxd_dev-1_secret');
    assert.equal(cred.controller, controller.url);
    assert.equal(cred.deviceId, 'dev-1');

    const again = await runAgent(['enroll', '--controller', controller.url, '--token', 'ibxe_other', '--root', root, '--data-dir', dataDir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already enrolled as device-one \(dev-1\).*--force/);
    assert.equal(controller.enrollRequests.length, 1, 'the token was not spent');

    controller.enrollResult = { deviceId: 'dev-2', deviceName: 'device-two', credential: 'ibxd_dev-2_x', labels: {}, certificatePem: '' };
    const forced = await runAgent(['enroll', '--controller', controller.url, '--token', 'ibxe_other', '--force', '--root', root, '--data-dir', dataDir]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).deviceId, 'dev-2');
  });

  it('enroll explains a refused token and an unreachable controller', async () => {
    controller.enrollResult = { code: grpcStatus.UNAUTHENTICATED, details: 'enrollment token expired' };
    const refused = await runAgent(['enroll', '--controller', controller.url, '--token', 'ibxe_bad', '--root', root, '--data-dir', join(root, 'd2')]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /refused the enrollment token \(enrollment token expired\); ask for a new token/);
    assert.equal(existsSync(join(root, 'd2', 'credential.json')), false);
    const unreachable = await runAgent(['enroll', '--controller', 'grpc://127.0.0.1:1', '--token', 'ibxe_x', '--root', root, '--data-dir', join(root, 'd3')]);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /cannot reach the controller at grpc:\/\/127\.0\.0\.1:1 .*check the URL/);
    const bad = await runAgent(['enroll', '--controller', 'http://x:1', '--token', 't', '--root', root]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--controller: "http:\/\/x:1" must start with grpc:\/\/ \(plaintext\) or grpcs:\/\/ \(TLS\)/);
    const missing = await runAgent(['enroll', '--controller', controller.url, '--root', root]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--token TOKEN is required/);
  });

  it('plan shows the steps and changes nothing; apply makes them; a second apply does nothing', async () => {
    writeFileSync(specFile, JSON.stringify({ files: { entries: [{ path: '/etc/issue', content: 'Ibex\n' }, { path: '/etc/old', ensure: 'absent' }] } }));
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(join(root, 'etc/old'), 'x');
    const plan = await runAgent(['plan', '--spec', specFile, '--root', root]);
    assert.equal(plan.code, 2, `exit 2: changes to apply\n${plan.stderr}`);
    assert.equal(
      plan.stdout,
      [
        'files: 2 step(s) to run',
        '  - write /etc/issue (5 bytes, mode 0644; creates it)',
        '      --- /dev/null',
        '      +++ b/etc/issue',
        '      @@ -0,0 +1 @@',
        '      +Ibex',
        '  - remove /etc/old (a file)',
        '      --- a/etc/old',
        '      +++ /dev/null',
        '      @@ -1 +0,0 @@',
        '      -x',
        '      \\ No newline at end of file',
        '',
      ].join('\n'),
    );
    assert.equal(existsSync(join(root, 'etc/issue')), false);
    assert.equal(existsSync(join(root, 'etc/old')), true);

    const json = await runAgent(['plan', '--spec', specFile, '--root', root, '--json']);
    const parsed = JSON.parse(json.stdout);
    assert.deepEqual(parsed.sections[0].steps.map((s: { action: string }) => s.action), ['write', 'remove']);
    assert.equal(parsed.sections[0].state, 'pending');

    const apply = await runAgent(['apply', '--spec', specFile, '--root', root]);
    assert.equal(apply.code, 0, apply.stderr);
    assert.match(apply.stdout, /^files: in sync \(2 step\(s\) applied\)/);
    assert.equal(readFileSync(join(root, 'etc/issue'), 'utf8'), 'Ibex\n');
    // The data dir (intents, backups) is private; the directories above it stay readable.
    assert.equal(statSync(join(root, 'var/lib/ibex-agent')).mode & 0o777, 0o700);
    assert.equal(statSync(join(root, 'var/lib')).mode & 0o777, 0o755);
    assert.equal(existsSync(join(root, 'etc/old')), false);

    const again = await runAgent(['apply', '--spec', specFile, '--root', root, '--json']);
    assert.equal(again.code, 0);
    assert.deepEqual(JSON.parse(again.stdout).sections, [{ section: 'files', state: 'in_sync', steps: [], observedAtMs: JSON.parse(again.stdout).sections[0].observedAtMs }]);
    const inSync = await runAgent(['plan', '--spec', specFile, '--root', root]);
    assert.equal(inSync.code, 0, 'exit 0: nothing to do');
    // status shows what the last (local) apply left.
    const st = JSON.parse((await runAgent(['status', '--root', root, '--json'])).stdout);
    assert.deepEqual(
      st.sections.map((x: { section: string; state: string; source: string; spec: string }) => [x.section, x.state, x.source, x.spec]),
      [['files', 'in_sync', 'local', specFile]],
    );
    assert.match((await runAgent(['status', '--root', root])).stdout, new RegExp(`\\n  files: in_sync \\(ibex-agent apply ${specFile}, `));
  });

  it('plan exits 1 on a refusal or an error, like terraform plan -detailed-exitcode, and says so in its help', async () => {
    const noLayout = join(root, 'no-layout.json');
    writeFileSync(noLayout, JSON.stringify({ generations: { volume: '/vol/none' } }));
    const refused = await runAgent(['plan', '--spec', noLayout, '--root', root]);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stdout, /^generations: refused: it cannot be applied as it is\n {2}- refuse: generations\.volume: \/vol\/none is not a mounted btrfs filesystem; run the generations\.init job/);
    const help = await runAgent(['help', 'plan']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /exit codes \(like terraform plan -detailed-exitcode\):\n {2}0 {2}nothing to do.*\n {2}1 {2}an error or a refusal.*\n(.*\n)* {2}2 {2}changes/);
  });

  it('refuses a bad spec file with exit 2, naming the file and the field path', async () => {
    const bad = join(root, 'bad.json');
    writeFileSync(bad, JSON.stringify({ files: { entries: [{ path: '/etc/ok', content: 'x' }, { path: '/etc/x', content: 'y', mode: '0999' }] } }));
    const r = await runAgent(['apply', '--spec', bad, '--root', root]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`spec file ${bad} is not a valid desired state: files\\.entries\\[1\\]\\.mode: must be an octal mode`));
    writeFileSync(bad, '{"files": ');
    // plan: 1 (its 2 means "changes").
    const notJson = await runAgent(['plan', '--spec', bad, '--root', root]);
    assert.equal(notJson.code, 1);
    assert.match(notJson.stderr, /spec file .*bad\.json is not valid JSON/);
    const unknownSection = join(root, 'unknown.json');
    writeFileSync(unknownSection, '{"netwrk": {}}');
    const u = await runAgent(['plan', '--spec', unknownSection, '--root', root]);
    assert.equal(u.code, 1);
    assert.match(u.stderr, /netwrk/);
  });

  it('refuses unknown flags, commands and settings with exit 2, naming them', async () => {
    const flag = await runAgent(['apply', '--spec', specFile, '--dry', '--root', root]);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /unknown flag --dry; flags are: --spec, --json/);
    const cmd = await runAgent(['deploy']);
    assert.equal(cmd.code, 2);
    assert.match(cmd.stderr, /unknown command "deploy"/);
    const none = await runAgent([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /usage: ibex-agent COMMAND/);
    const env = await runAgent(['status', '--root', root], { IBEX_AGENT_DRIFT_INTERVAL: '5' });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /IBEX_AGENT_DRIFT_INTERVAL is not a setting/);
    const cfg = join(root, 'etc/ibex/agent.json');
    mkdirSync(join(root, 'etc/ibex'), { recursive: true });
    writeFileSync(cfg, JSON.stringify({ logLevel: 'debug', healdrift: false }));
    const key = await runAgent(['status', '--root', root]);
    assert.equal(key.code, 2);
    assert.match(key.stderr, new RegExp(`config file ${cfg}: "healdrift" is not a setting`));
    const missing = await runAgent(['status', '--root', root, '--config', join(root, 'nope.json')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /config file .*nope\.json does not exist/);
  });

  it('refuses an unknown failpoint name before any command runs (a typo would make a crash test pass vacuously)', async () => {
    const r = await runAgent(['version'], { IBEX_AGENT_FAILPOINTS: 'job-accepted,intent-writen' });
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^ibex-agent version: IBEX_AGENT_FAILPOINTS: unknown failpoint\(s\) "intent-writen"; known: job-accepted, /);
    assert.equal((await runAgent(['version'], { IBEX_AGENT_FAILPOINTS: 'job-accepted' })).code, 0);
  });

  it('version prints the agent version', async () => {
    const r = await runAgent(['version']);
    assert.equal(r.code, 0);
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    assert.match(r.stdout, new RegExp(`^ibex-agent ${pkg.version.replace(/\./g, '\\.')} \\(node 24\\.`));
  });
});
