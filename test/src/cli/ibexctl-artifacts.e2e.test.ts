// ibexctl artifacts end to end: the built CLI against the controller as a real process.
// Upload (streamed) with an expected sha256, list/get in every output format, download
// (whole, then resumed from a partial file), delete, and the errors a user meets.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { createTestDatabase, type TestDatabase } from '@ibex/migrate';
import { deleteRedisPrefix, testRedisUrl } from '@ibex/test-support';
import { ControllerProcess } from '../e2e/helpers/controller-process.js';
import { IbexctlHome } from '../e2e/helpers/ibexctl.js';

describe('ibexctl artifacts against a real controller', () => {
  let db: TestDatabase;
  let ctl: ControllerProcess;
  let home: IbexctlHome;
  let work: string;
  let store: string;
  const bytes = randomBytes(3 * 1024 * 1024 + 5);
  const sha = createHash('sha256').update(bytes).digest('hex');

  before(async () => {
    db = await createTestDatabase();
    work = await mkdtemp(join(tmpdir(), 'ibexctl-art-'));
    store = await mkdtemp(join(tmpdir(), 'ibexctl-art-store-'));
    home = await IbexctlHome.create();
    ctl = new ControllerProcess({ databaseUrl: db.url, env: { IBEX_LOG_LEVEL: 'warn', IBEX_ARTIFACTS_DIR: store } });
    await ctl.start();
    await writeFile(join(work, 'rootfs.tar'), bytes);
  });
  after(async () => {
    await ctl?.stop('SIGKILL').catch(() => {});
    if (ctl) await deleteRedisPrefix(testRedisUrl, ctl.redisPrefix);
    await db?.drop();
    await home?.remove();
    await rm(work, { recursive: true, force: true });
    await rm(store, { recursive: true, force: true });
  });

  const run = (args: string[]) => home.run([...args, '--server', ctl.baseUrl, '--token', ctl.adminToken]);
  const ok = async (args: string[]) => {
    const r = await run(args);
    assert.equal(r.code, 0, `ibexctl ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };

  it('uploads a file with its expected sha256 and shows it in table, json and yaml', async () => {
    const out = await ok(['artifacts', 'upload', join(work, 'rootfs.tar'), 'rootfs@1.0', '--kind', 'generation-tarball', '--sha256', sha, '-l', 'os=alpine', '--arch', 'x86_64']);
    assert.match(out, new RegExp(`artifact rootfs@1\\.0 uploaded \\(3\\.0 MiB, sha256 ${sha}`));
    const list = await ok(['artifacts', 'list']);
    assert.match(list, /REF\s+KIND\s+SIZE/);
    assert.match(list, /rootfs@1\.0\s+generation-tarball\s+3\.0 MiB/);
    const j = JSON.parse(await ok(['artifacts', 'get', 'rootfs@1.0', '-o', 'json']));
    assert.equal(j.sha256, sha);
    assert.deepEqual(j.labels, { os: 'alpine' });
    const y = parseYaml(await ok(['artifacts', 'ls', '-o', 'yaml']));
    assert.equal(y[0].ref, 'rootfs@1.0');
    assert.match(await ok(['artifacts', 'get', j.id]), /SHA-256:\s+[0-9a-f]{64}/);
  });

  it('downloads whole, and resumes a partial download from where it stopped', async () => {
    const dest = join(work, 'out.tar');
    assert.match(await ok(['artifacts', 'download', 'rootfs@1.0', '--to', dest]), /sha256 verified/);
    assert.ok((await readFile(dest)).equals(bytes));
    const dest2 = join(work, 'out2.tar');
    await writeFile(`${dest2}.part`, bytes.subarray(0, 1_000_000));
    assert.match(await ok(['artifacts', 'download', 'rootfs@1.0', '--to', dest2]), /resumed at byte 1000000; sha256 verified/);
    assert.ok((await readFile(dest2)).equals(bytes));
  });

  it('says what is wrong: bad sha256, taken name@version, bad ref, unknown artifact; deletes', async () => {
    const bad = await run(['artifacts', 'upload', join(work, 'rootfs.tar'), 'rootfs@2', '--sha256', '0'.repeat(64)]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not the expected 0{64}/);
    const taken = await run(['artifacts', 'upload', join(work, 'rootfs.tar'), 'rootfs@1.0']);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /already exists/);
    const usage = await run(['artifacts', 'upload', join(work, 'rootfs.tar'), 'no-version']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /NAME@VERSION/);
    const missing = await run(['artifacts', 'get', 'nope@1']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /artifact nope@1 not found/);
    assert.match(await ok(['artifacts', 'delete', 'rootfs@1.0']), /deleted/);
    assert.match((await run(['artifacts', 'list'])).stderr, /no artifacts/);
  });
});
