// ibexctl end to end: the built command against the controller as a real process (Postgres,
// Redis) and the built agent binary as the device. Every command group, every output format,
// bad input and the exit codes apps/cli/README.md documents. Each run gets its own HOME and
// XDG_CONFIG_HOME, so the contexts file is a temporary one.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { AgentProcess } from '../e2e/helpers/agent-process.js';
import { ControllerProcess } from '../e2e/helpers/controller-process.js';
import { exec, waitFor } from '../e2e/helpers/exec.js';
import { IbexctlHome } from '../e2e/helpers/ibexctl.js';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';

const DEVICE = 'cli-edge-1';

describe('ibexctl against a real controller and agent', () => {
  let db: TestDatabase;
  let ctl: ControllerProcess;
  let agent: AgentProcess;
  let root: string;
  let home: IbexctlHome;
  let work: string;

  const ibexctl = (args: string[], opts: { env?: Record<string, string>; input?: string } = {}) => home.run(args, opts);
  /** Runs and expects exit 0; returns stdout. */
  async function ok(args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<string> {
    const r = await ibexctl(args, opts);
    assert.equal(r.code, 0, `ibexctl ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout;
  }
  async function fails(args: string[], code: number, stderr: RegExp, opts: { env?: Record<string, string>; input?: string } = {}): Promise<string> {
    const r = await ibexctl(args, opts);
    assert.equal(r.code, code, `ibexctl ${args.join(' ')}: expected exit ${code}, got ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stderr, stderr);
    return r.stderr;
  }
  const json = async <T = any>(args: string[], opts = {}): Promise<T> => JSON.parse(await ok([...args, '-o', 'json'], opts)) as T;

  before(async () => {
    db = await createTestDatabase();
    root = await mkdtemp(join(tmpdir(), 'ibexctl-e2e-root-'));
    work = await mkdtemp(join(tmpdir(), 'ibexctl-e2e-work-'));
    home = await IbexctlHome.create();
    ctl = new ControllerProcess({
      databaseUrl: db.url,
      env: { IBEX_HEARTBEAT_INTERVAL_MS: '1000', IBEX_PRESENCE_FLUSH_MS: '200', IBEX_LOG_LEVEL: 'warn' },
    });
    await ctl.start();
    agent = new AgentProcess([], root);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => {});
    await ctl?.stop('SIGKILL').catch(() => {});
    if (ctl) await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await db?.drop();
    for (const d of [root, work]) if (d) await rm(d, { recursive: true, force: true });
    await home?.remove();
  });

  it('login checks the URL and token, then saves a context (mode 0600) in XDG_CONFIG_HOME', async () => {
    await fails(['devices', 'list'], 3, /no controller configured; run `ibexctl login/);
    await fails(['login', '--server', ctl.baseUrl, '--token', 'not-a-token'], 2, /--token: must look like ibx_/);
    await fails(['login', '--server', ctl.baseUrl, '--token', `ibx_${'x'.repeat(40)}`], 3, /error: .*token/i);
    await fails(['login', '--server', 'http://127.0.0.1:1', '--token', ctl.adminToken], 6, /cannot reach the controller at http:\/\/127\.0\.0\.1:1/);
    assert.equal(existsSync(home.configFile), false, 'a failed login writes nothing');

    const out = await ok(['login', '--server', ctl.baseUrl, '--token', ctl.adminToken]);
    assert.match(out, /logged in to http:\/\/127\.0\.0\.1:\d+ as context "default"/);
    assert.equal((await stat(home.configFile)).mode & 0o777, 0o600);
    const saved = JSON.parse(await readFile(home.configFile, 'utf8'));
    assert.deepEqual(saved, { contexts: { default: { server: ctl.baseUrl, token: ctl.adminToken } }, currentContext: 'default' });
    assert.equal(existsSync(join(home.home, '.config')), false, 'XDG_CONFIG_HOME wins over HOME');
    assert.deepEqual(await json(['config', 'get-contexts']), [{ name: 'default', current: true, server: ctl.baseUrl, hasToken: true }]);
    assert.equal((await ok(['config', 'current-context'])).trim(), 'default');
    await fails(['--context', 'staging', 'devices', 'list'], 2, /no context "staging" .* \(there are: default\)/);
    await fails(['config', 'use-context', 'staging'], 4, /no context "staging"/);
  });

  it('enrollment-tokens create/list/revoke, and a device enrolled with one', async () => {
    const created = await json(['enrollment-tokens', 'create', '--description', 'cli lab', '--max-uses', '2', '-l', 'site=lab', '-l', 'tier=edge']);
    assert.match(created.token, /^ibxe_/);
    assert.match(created.enrollCommand, /ibex-agent enroll --controller grpc:\/\/.* --token ibxe_/);
    assert.deepEqual(created.labels, { site: 'lab', tier: 'edge' });
    await fails(['enrollment-tokens', 'create', '--max-uses', 'lots'], 2, /--max-uses lots: must be a whole number/);
    await fails(['enrollment-tokens', 'create', '-l', 'site'], 2, /--label "site": must be key=value/);

    const enroll = await agent.cli(['enroll', '--controller', `grpc://127.0.0.1:${ctl.grpcPort}`, '--token', created.token, '--name', DEVICE]);
    assert.equal(enroll.code, 0, enroll.stderr);
    agent.start({ IBEX_AGENT_HEAL_DRIFT: 'false' });
    await waitFor('the device online', async () => (await ctl.json(`/api/v1/devices/${DEVICE}`)).status === 'online', 30_000);

    const table = await ok(['enrollment-tokens', 'list']);
    assert.match(table.split('\n')[0]!, /^ID\s+PREFIX\s+STATUS\s+USES\s+EXPIRES\s+LABELS\s+DESCRIPTION$/);
    assert.match(table, new RegExp(`${created.id}\\s+${created.prefix}\\s+active\\s+1/2`));
    const spare = await json(['enrollment-tokens', 'create']);
    assert.match(await ok(['enrollment-tokens', 'revoke', spare.id]), /revoked/);
    const listed = parseYaml(await ok(['enrollment-tokens', 'list', '-o', 'yaml'])) as Array<{ id: string; status: string }>;
    assert.equal(listed.find((t) => t.id === spare.id)?.status, 'revoked');
    await fails(['enrollment-tokens', 'revoke', '00000000-0000-4000-8000-000000000000'], 4, /not found/);
  });

  it('devices list in table, JSON and YAML, with -l selectors, --status and --sync', async () => {
    const table = await ok(['devices', 'list']);
    const [head, row] = table.trimEnd().split('\n');
    assert.match(head!, /^NAME\s+STATUS\s+SYNC\s+REVISION\s+LAST SEEN\s+AGENT\s+LABELS$/);
    assert.match(row!, new RegExp(`^${DEVICE}\\s+online\\s+none\\s+0/0\\s+\\d+s ago\\s+\\d+\\.\\d+\\.\\d+\\s+site=lab,tier=edge$`));
    assert.doesNotMatch(table, /\x1b\[/, 'no colours when stdout is not a terminal');

    const asJson = await json<Array<{ name: string; status: string; labels: object }>>(['devices', 'list']);
    assert.deepEqual(asJson.map((d) => [d.name, d.status]), [[DEVICE, 'online']]);
    const asYaml = parseYaml(await ok(['devices', 'ls', '-o', 'yaml'])) as typeof asJson;
    assert.deepEqual(asYaml, asJson.map((d) => ({ ...d, lastSeenAt: (asYaml[0] as any).lastSeenAt })));

    assert.equal((await json(['devices', 'list', '-l', 'site=lab', '-l', 'tier'])).length, 1);
    assert.equal((await json(['devices', 'list', '-l', 'site!=lab'])).length, 0);
    const none = await ibexctl(['devices', 'list', '-l', 'site=moon']);
    assert.equal(none.code, 0);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /no devices match/);
    assert.equal((await json(['devices', 'list', '--status', 'online', '--sync', 'none'])).length, 1);
    // Bad input the API refuses names the field; a bad -o is refused before any request.
    await fails(['devices', 'list', '--status', 'sleeping'], 2, /status: must be online, offline or revoked/);
    await fails(['devices', 'list', '-l', 'Bad Key=x'], 2, /selector/);
    await fails(['devices', 'list', '-o', 'xml'], 2, /Allowed choices are table, json, yaml/);
    await fails(['devices', 'lsit'], 2, /unknown command 'lsit'/);
    await fails(['devices', 'list', '--colour'], 2, /unknown option '--colour'/);
  });

  it('devices get, label (key=value sets, key- removes) and the errors for unknown devices and bad labels', async () => {
    const get = await ok(['devices', 'get', DEVICE]);
    assert.match(get, /^Name:\s+cli-edge-1$/m);
    assert.match(get, /^Status:\s+online$/m);
    assert.match(get, /^Host:\s+\S+, .*kernel/m);
    const d = await json(['devices', 'get', DEVICE]);
    assert.equal(d.name, DEVICE);
    assert.ok(d.facts.kernel);
    await fails(['devices', 'get', 'no-such-device'], 4, /device "no-such-device" not found/);

    assert.match(await ok(['devices', 'label', DEVICE, 'env=prod', 'tier-']), /labelled: env=prod,site=lab/);
    assert.deepEqual((await ctl.json(`/api/v1/devices/${DEVICE}`)).labels, { env: 'prod', site: 'lab' });
    const stderr = await fails(['devices', 'label', DEVICE, 'Bad Key=x'], 2, /error: /);
    assert.match(stderr, /^ {2}labels\.Bad Key: /m);
    await fails(['devices', 'label', DEVICE, 'justakey'], 2, /label "justakey": give key=value to set a label or key- to remove one/);
    assert.deepEqual((await ctl.json(`/api/v1/devices/${DEVICE}`)).labels, { env: 'prod', site: 'lab' }, 'refused labels change nothing');
  });

  it('state apply --dry-run prints the diff and changes nothing; apply --wait applies; state get shows it', async () => {
    const spec = join(work, 'motd.yaml');
    await writeFile(spec, 'files:\n  entries:\n    - path: /etc/motd\n      content: "Managed by Ibex\\n"\n      mode: "0644"\n');
    const plan = await ok(['state', 'apply', DEVICE, '-f', spec, '--dry-run']);
    assert.match(plan, /^files: pending$/m);
    assert.match(plan, /write \/etc\/motd/);
    assert.match(plan, /^ {4}\+Managed by Ibex$/m);
    assert.match(plan, /1 step would run; nothing was changed\./);
    assert.equal(existsSync(join(root, 'etc/motd')), false, 'a dry run writes nothing on the device');
    assert.equal((await ctl.json(`/api/v1/devices/${DEVICE}`)).desiredRevision, 0, 'a dry run stores no revision');
    const planJson = await json(['state', 'apply', DEVICE, '-f', spec, '--dry-run']);
    assert.equal(planJson.proposed, true);
    assert.equal(planJson.sections[0].steps[0].action, 'write');

    const applied = await ok(['state', 'apply', DEVICE, '-f', spec, '-m', 'motd from the cli', '--wait']);
    assert.match(applied, /desired revision 1 stored; waiting/);
    assert.match(applied, /revision 1 applied, every section in sync/);
    assert.equal(await readFile(join(root, 'etc/motd'), 'utf8'), 'Managed by Ibex\n');

    const state = await ok(['state', 'get', DEVICE]);
    assert.match(state, /^In sync:\s+yes$/m);
    assert.match(state, /^files\s+in_sync\s+1\s/m);
    const s = await json(['state', 'get', DEVICE]);
    assert.equal(s.inSync, true);
    assert.equal((parseYaml(await ok(['state', 'get', DEVICE, '-o', 'yaml'])) as { appliedRevision: number }).appliedRevision, 1);

    // The same spec as JSON, from standard input: nothing new to do.
    const again = await ok(['state', 'apply', DEVICE, '-f', '-', '--dry-run'], { input: JSON.stringify({ files: { entries: [{ path: '/etc/motd', content: 'Managed by Ibex\n', mode: '0644' }] } }) });
    assert.match(again, /^files: in sync$/m);
    assert.match(again, /Nothing would change\./);
    assert.equal((await json(['devices', 'list', '--sync', 'in_sync'])).length, 1);
  });

  it('a bad spec is refused before anything is sent, naming the file and each field', async () => {
    const bad = join(work, 'bad.yaml');
    await writeFile(bad, 'files:\n  entries:\n    - path: etc/motd\n      mode: "999"\n');
    const err = await fails(['state', 'apply', DEVICE, '-f', bad], 2, new RegExp(`invalid spec in ${bad.replace(/[.]/g, '\\.')}`));
    assert.match(err, /^ {2}files\.entries\[0\]\.path: must be an absolute path$/m);
    assert.match(err, /^ {2}files\.entries\[0\]\.mode: must be an octal mode/m);
    await writeFile(bad, 'files: [unclosed\n');
    await fails(['state', 'apply', DEVICE, '-f', bad], 2, /is not valid YAML or JSON/);
    await writeFile(bad, '- just\n- a list\n');
    await fails(['state', 'apply', DEVICE, '-f', bad], 2, /must hold a desired-state object/);
    await writeFile(bad, 'printers: {}\n');
    await fails(['state', 'apply', DEVICE, '-f', bad], 2, /printers/);
    await fails(['state', 'apply', DEVICE, '-f', join(work, 'missing.yaml')], 2, /cannot read .*missing\.yaml: no such file/);
    await fails(['state', 'apply', DEVICE], 2, /required option '-f, --file <file>' not specified/);
    assert.equal((await ctl.json(`/api/v1/devices/${DEVICE}`)).desiredRevision, 1, 'no revision was stored');
  });

  it('jobs create --watch follows a job to success, log lines included; list, get, types; a failed job exits 1', async () => {
    const watched = await ibexctl(['jobs', 'create', DEVICE, '-t', 'facts.collect', '--watch']);
    assert.equal(watched.code, 0, watched.stderr);
    assert.match(watched.stdout, /^job [0-9a-f-]{36} created \(facts\.collect on cli-edge-1, queued\)$/m);
    assert.match(watched.stdout, /info\s+collected facts: \d+ interfaces/);
    assert.match(watched.stdout, /job [0-9a-f-]{36} succeeded \(attempt 1\)/);
    assert.match(watched.stderr, /: succeeded 100%/, 'progress lines on stderr when not a terminal');
    const id = /job ([0-9a-f-]{36}) created/.exec(watched.stdout)![1]!;

    const list = await json<Array<{ id: string; status: string }>>(['jobs', 'list', '--device', DEVICE, '--type', 'facts.collect']);
    assert.deepEqual(list.map((j) => [j.id, j.status]), [[id, 'succeeded']]);
    assert.match(await ok(['jobs', 'list', '--status', 'succeeded']), new RegExp(`${id}\\s+facts\\.collect\\s+succeeded\\s+100%\\s+1/3`));
    const got = parseYaml(await ok(['jobs', 'get', id, '-o', 'yaml'])) as { status: string; logs: unknown[] };
    assert.equal(got.status, 'succeeded');
    assert.ok(got.logs.length >= 1);
    assert.match(await ok(['jobs', 'get', id]), /^Status:\s+succeeded$/m);
    assert.match(await ok(['jobs', 'types']), /^state\.plan\s+120s\s+yes\s+Dry run/m);
    assert.match(await ok(['jobs', 'watch', id]), new RegExp(`collected facts[^]*job ${id} succeeded \\(attempt 1\\)`), 'watching a finished job replays its log');

    // A rollback on a device without generations fails on the agent: watch exits 1 with the reason.
    const failed = await ibexctl(['jobs', 'create', DEVICE, '-t', 'generations.rollback', '--watch']);
    assert.equal(failed.code, 1, `${failed.stdout}\n${failed.stderr}`);
    assert.match(failed.stderr, /error: job [0-9a-f-]{36} (failed|rejected): /);
    await fails(['jobs', 'cancel', id], 5, /already finished with status succeeded/);
    await fails(['jobs', 'create', DEVICE, '-t', 'facts.collect', '-p', 'verbose=yes'], 2, /params\.verbose/);
    await fails(['jobs', 'create', DEVICE, '-t', 'no.such'], 2, /type: must be one of facts\.collect/);
    await fails(['jobs', 'create', DEVICE, '-t', 'facts.collect', '--params', '{oops'], 2, /--params is not valid JSON/);
    await fails(['jobs', 'get', '00000000-0000-4000-8000-000000000000'], 4, /not found/);

    // A job queued while the device is away is cancelled at once.
    await agent.stop();
    const queued = await json(['jobs', 'create', DEVICE, '-t', 'facts.collect']);
    assert.match(await ok(['jobs', 'cancel', queued.id]), new RegExp(`job ${queued.id} cancelled`));
    agent.start({ IBEX_AGENT_HEAL_DRIFT: 'false' });
    await waitFor('the device online again', async () => (await ctl.json(`/api/v1/devices/${DEVICE}`)).status === 'online', 30_000);
  });

  it('generations list says when a device has none; rollback is refused by the API with the reason', async () => {
    await fails(['generations', 'list', DEVICE], 4, /reports no generations/);
    const g = await json(['generations', 'list', DEVICE]);
    assert.equal(g[0].supported, false);
    await fails(['generations', 'rollback', DEVICE], 5, /generations/);
  });

  it('api-tokens: create a viewer (shown once), use it through IBEX_TOKEN, refused writes exit 3, revoke', async () => {
    const t = await json(['api-tokens', 'create', '--name', 'cli-viewer', '--role', 'viewer']);
    assert.match(t.token, /^ibx_/);
    await fails(['api-tokens', 'create', '--name', 'x', '--role', 'root'], 2, /--role root: must be admin, operator or viewer/);
    const viewer = { IBEX_TOKEN: t.token };
    assert.equal((await json(['devices', 'list'], { env: viewer })).length, 1, 'IBEX_TOKEN overrides the context token');
    await fails(['devices', 'label', DEVICE, 'x=y'], 3, /role viewer, which can only read/, { env: viewer });
    await fails(['api-tokens', 'list'], 3, /needs an admin token/, { env: viewer });
    const list = await ok(['api-tokens', 'list']);
    assert.match(list, new RegExp(`${t.id}\\s+cli-viewer\\s+viewer\\s+active`));
    assert.match(await ok(['api-tokens', 'revoke', t.id]), /revoked/);
    await fails(['devices', 'list'], 3, /revoked|unknown|expired/i, { env: viewer });
  });

  it('audit list shows the changes made above, filters by action, in every format', async () => {
    const events = await json<Array<{ action: string }>>(['audit', 'list', '--limit', '200']);
    const actions = new Set(events.map((e) => e.action));
    for (const a of ['enrollment_token.create', 'device.enroll', 'device.update', 'device.desired_state.set', 'job.create', 'job.cancel', 'api_token.create', 'api_token.revoke']) {
      assert.ok(actions.has(a), `audit has ${a}: ${[...actions].join(', ')}`);
    }
    const devicesOnly = await json<Array<{ action: string }>>(['audit', 'list', '--action', 'device.*']);
    assert.ok(devicesOnly.length >= 2 && devicesOnly.every((e) => e.action.startsWith('device.')));
    assert.match((await ok(['audit', 'list', '--limit', '3'])).split('\n')[0]!, /^TIME\s+ACTION\s+ACTOR\s+TARGET$/);
    assert.equal((await ok(['audit', 'list', '--limit', '3'])).trimEnd().split('\n').length, 4);
    assert.ok((parseYaml(await ok(['audit', 'list', '-o', 'yaml', '--limit', '2'])) as unknown[]).length === 2);
    await fails(['audit', 'list', '--since', 'yesterday'], 2, /since: must be an ISO 8601 timestamp/);
    await fails(['audit', 'list', '--limit', '0'], 2, /--limit 0: must be a whole number/);
  });

  it('bash completion: the script completes commands, flags, choices and device names in real bash', async () => {
    const script = await ok(['completion', 'bash']);
    assert.match(script, /complete -o default -F _ibexctl_complete ibexctl/);
    const scriptFile = join(work, 'ibexctl.bash');
    await writeFile(scriptFile, script);
    const complete = async (...words: string[]) => {
      // COMP_WORDS/COMP_CWORD as bash sets them when TAB is pressed after `words`.
      const program = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _ibexctl_complete; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const r = await exec('bash', ['-c', program, 'complete', scriptFile, 'ibexctl', ...words], { env: home.env() });
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.split('\n').filter(Boolean);
    };
    assert.deepEqual(await complete('dev'), ['devices']);
    assert.deepEqual(await complete('devices', ''), ['get', 'identity', 'label', 'list', 'revoke', 'revoke-certificate', 'revoke-credential', 'summary']);
    assert.deepEqual(await complete('devices', 'list', '-o', ''), ['json', 'table', 'yaml']);
    assert.ok((await complete('devices', 'list', '--s')).includes('--selector'));
    assert.deepEqual(await complete('devices', 'get', 'cli-'), [DEVICE]);
    assert.deepEqual(await complete('jobs', 'w'), ['watch']);
    await fails(['completion', 'fish'], 2, /only bash/);
  });

  it('rollouts: --dry-run shows the real agent\'s plan and changes nothing; create --watch rolls it out; list, get; schedules', async () => {
    const file = join(work, 'rollout.yaml');
    await writeFile(
      file,
      [
        'name: motd-v2',
        'target: { kind: all }',
        'payload:',
        '  kind: desired_state',
        '  spec:',
        '    files:',
        '      entries:',
        '        - { path: /etc/motd, content: "Rolled out by Ibex\\n", mode: "0644" }',
        'strategy: { canary: { count: 1 }, successThresholdPercent: 100 }',
        '',
      ].join('\n'),
    );
    const revision = (await ctl.json(`/api/v1/devices/${DEVICE}`)).desiredRevision as number;
    const dry = await ok(['rollouts', 'create', '-f', file, '--dry-run', '--wait', '30']);
    assert.match(dry, /dry run: 1 device\(s\) in 1 wave\(s\), 0 skipped; nothing was changed/);
    assert.match(dry, /canary\s+cli-edge-1\s+planned\s+files: pending \(write \/etc\/motd/);
    assert.equal(await readFile(join(root, 'etc/motd'), 'utf8'), 'Managed by Ibex\n', 'the dry run changed nothing on the device');
    assert.equal((await ctl.json(`/api/v1/devices/${DEVICE}`)).desiredRevision, revision, 'nor in the desired state');
    assert.equal((await json(['rollouts', 'list'])).length, 0, 'nor stored a rollout');

    const created = await ok(['rollouts', 'create', '-f', file, '--watch']);
    assert.match(created, /rollout motd-v2 created \(.+\): 1 device\(s\) in 1 wave\(s\)/);
    assert.match(created, /rollout motd-v2 succeeded: 1 device\(s\)/);
    assert.equal(await readFile(join(root, 'etc/motd'), 'utf8'), 'Rolled out by Ibex\n', 'the real agent applied it');
    const list = await ok(['rollouts', 'list']);
    assert.match(list.split('\n')[0]!, /^ID\s+NAME\s+STATUS\s+DONE\s+FAILED\s+WAVE\s+PAYLOAD\s+CREATED$/);
    assert.match(list, /motd-v2\s+succeeded\s+1\/1\s+0\s+canary\s+desired_state/);
    const got = await ok(['rollouts', 'get', 'motd-v2', '--devices']);
    assert.match(got, /^canary\s+1\s+0\s+0\s+1\s+0\s+0\s+0\s+passed$/m);
    assert.match(got, /^cli-edge-1\s+canary\s+succeeded\s+-$/m);
    await fails(['rollouts', 'pause', 'motd-v2'], 5, /rollout "motd-v2" is succeeded; pause needs it/);
    await fails(['rollouts', 'watch', 'no-such-rollout'], 4, /rollout no-such-rollout not found/);

    await writeFile(join(work, 'bad-rollout.yaml'), 'name: bad\ntarget: { kind: all }\npayload: { kind: generation_rollback }\nstart: { kind: window, cron: "0 2 * * 0", timeZone: Mars/Olympus, durationMinutes: 60 }\n');
    const err = await fails(['rollouts', 'create', '-f', join(work, 'bad-rollout.yaml')], 2, /invalid/);
    assert.match(err, /payload\.toDate/);

    await writeFile(join(work, 'schedule.yaml'), 'name: sunday-motd\ncron: "0 2 * * 0"\ntimeZone: Europe/Berlin\nrollout:\n  name: weekly motd\n  target: { kind: all }\n  payload: { kind: generation_rollback, toGeneration: g1 }\n');
    assert.match(await ok(['schedules', 'create', '-f', join(work, 'schedule.yaml')]), /schedule sunday-motd created: 0 2 \* \* 0 \(Europe\/Berlin\), next 20\d\d-\d\d-\d\dT01:00:00.000Z/);
    assert.match(await ok(['schedules', 'list']), /sunday-motd\s+0 2 \* \* 0\s+Europe\/Berlin\s+active/);
    assert.match(await ok(['schedules', 'pause', 'sunday-motd']), /schedule sunday-motd: paused/);
    assert.match(await ok(['schedules', 'list']), /sunday-motd\s+.*paused/);
    assert.match(await ok(['schedules', 'resume', 'sunday-motd']), /active, next/);
    assert.match(await ok(['schedules', 'delete', 'sunday-motd']), /deleted/);
    await fails(['schedules', 'get', 'sunday-motd'], 4, /not found/);
  });

  it('devices summary; an unreachable controller exits 6; a damaged config file is named; revoke', async () => {
    const s = await json(['devices', 'summary']);
    assert.equal(s.devices.online, 1);
    assert.equal(s.sync.in_sync, 1);
    assert.match(await ok(['devices', 'summary']), /^Devices:\s+1 \(1 online, 0 offline, 0 revoked\)$/m);
    await fails(['--server', 'http://127.0.0.1:1', 'devices', 'list'], 6, /cannot reach the controller/);

    // The agent enrolled with a CSR: one credential, one certificate.
    const identity = await json(['devices', 'identity', DEVICE]);
    assert.equal(identity.credentials.length, 1);
    assert.equal(identity.certificates.length, 1);
    const cert = identity.certificates[0];
    assert.match(await ok(['devices', 'identity', DEVICE]), new RegExp(`^${cert.serial}\\s+valid\\s+`, 'm'));
    assert.match(await ok(['devices', 'revoke-certificate', DEVICE, cert.serial.toLowerCase()]), new RegExp(`certificate ${cert.serial} of device ${DEVICE} revoked`));
    assert.match(await ok(['devices', 'revoke-credential', DEVICE, identity.credentials[0].id]), /revoked/);
    assert.match(await ok(['devices', 'identity', DEVICE]), new RegExp(`^${cert.serial}\\s+revoked\\s+`, 'm'));
    await fails(['devices', 'revoke-credential', DEVICE, 'nope'], 4, /has no credential nope/);
    await waitFor('the stream closed', async () => (await ctl.json(`/api/v1/devices/${DEVICE}`)).connectedAt === null, 5000);

    const revoked = await ok(['devices', 'revoke', DEVICE]);
    assert.match(revoked, /device cli-edge-1 revoked; it must enroll again/);
    assert.equal((await json(['devices', 'get', DEVICE])).status, 'revoked');

    await writeFile(home.configFile, '{"contexts": ');
    await fails(['devices', 'list'], 2, /config\.json is not valid JSON/);
    await writeFile(home.configFile, JSON.stringify({ contexts: { default: { server: 'ftp://x', token: 'nope' } } }));
    const err = await fails(['devices', 'list'], 2, /invalid config file/);
    assert.match(err, /contexts\.default\.server: must be an http/);
    assert.match(err, /contexts\.default\.token: must look like ibx_/);
  });
});
