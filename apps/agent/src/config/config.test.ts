import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { UsageError } from '../common/errors.js';
import { parseControllerUrl } from '../connection/controller-url.js';
import { loadConfig } from './config.js';

describe('config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibex-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'root');
  const file = join(root, 'etc/ibex/agent.json');
  mkdirSync(join(root, 'etc/ibex'), { recursive: true });
  const writeConfig = (v: unknown) => writeFileSync(file, JSON.stringify(v));
  const usage = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof UsageError && re.test(e.message), `expected a UsageError matching ${re}`);

  it('has defaults, with the data dir under the root, and a missing default file is fine', () => {
    const c = loadConfig({ flags: { root: join(dir, 'empty') }, env: {}, cwd: dir });
    assert.deepEqual({ ...c, configFile: undefined }, {
      controller: undefined,
      root: join(dir, 'empty'),
      dataDir: join(dir, 'empty', 'var/lib/ibex-agent'),
      logLevel: 'info',
      logFormat: 'text',
      driftCheckIntervalSec: 300,
      healDrift: true,
      caFile: undefined,
      configFile: undefined,
    });
    assert.equal(loadConfig({ flags: {}, env: {}, cwd: dir }).dataDir, '/var/lib/ibex-agent');
  });

  it('takes flags over environment over file over defaults', () => {
    writeConfig({ logLevel: 'warn', driftCheckIntervalSec: 60, healDrift: false, controller: 'grpc://file:1' });
    const fileOnly = loadConfig({ flags: { root }, env: {}, cwd: dir });
    assert.equal(fileOnly.logLevel, 'warn');
    assert.equal(fileOnly.driftCheckIntervalSec, 60);
    assert.equal(fileOnly.healDrift, false);
    assert.equal(fileOnly.controller, 'grpc://file:1');
    const env = { IBEX_AGENT_LOG_LEVEL: 'error', IBEX_AGENT_DRIFT_CHECK_INTERVAL_SEC: '30', IBEX_AGENT_HEAL_DRIFT: 'true' };
    const withEnv = loadConfig({ flags: { root }, env, cwd: dir });
    assert.equal(withEnv.logLevel, 'error');
    assert.equal(withEnv.driftCheckIntervalSec, 30);
    assert.equal(withEnv.healDrift, true);
    const withFlags = loadConfig({ flags: { root, logLevel: 'debug', driftCheckIntervalSec: '5', healDrift: false }, env, cwd: dir });
    assert.equal(withFlags.logLevel, 'debug');
    assert.equal(withFlags.driftCheckIntervalSec, 5);
    assert.equal(withFlags.healDrift, false);
    assert.equal(withFlags.controller, 'grpc://file:1');
  });

  it('finds the default config file under a root given in the environment', () => {
    writeConfig({ logFormat: 'json' });
    assert.equal(loadConfig({ flags: {}, env: { IBEX_AGENT_ROOT: root }, cwd: dir }).logFormat, 'json');
  });

  it('resolves relative paths: flags against the working directory, file values against the file', () => {
    writeConfig({ caFile: 'ca.pem', dataDir: '../data' });
    const c = loadConfig({ flags: { root }, env: {}, cwd: dir });
    assert.equal(c.caFile, join(root, 'etc/ibex/ca.pem'));
    assert.equal(c.dataDir, join(root, 'etc/data'));
    assert.equal(loadConfig({ flags: { root: 'rel' }, env: {}, cwd: dir }).root, join(dir, 'rel'));
  });

  it('names the unknown key, flag value or variable, and the file', () => {
    writeConfig({ loglevel: 'debug' });
    usage(() => loadConfig({ flags: { root }, env: {}, cwd: dir }), new RegExp(`config file ${file}: "loglevel" is not a setting; known settings: controller, dataDir`));
    writeConfig({ driftCheckIntervalSec: 0 });
    usage(() => loadConfig({ flags: { root }, env: {}, cwd: dir }), /config file .*: driftCheckIntervalSec: .*>=1/);
    writeFileSync(file, '{ nope');
    usage(() => loadConfig({ flags: { root }, env: {}, cwd: dir }), /is not valid JSON/);
    writeConfig({});
    usage(() => loadConfig({ flags: { root }, env: { IBEX_AGENT_LOGLEVEL: 'x' }, cwd: dir }), /IBEX_AGENT_LOGLEVEL is not a setting; known: IBEX_AGENT_CONTROLLER/);
    usage(() => loadConfig({ flags: { root }, env: { IBEX_AGENT_HEAL_DRIFT: 'maybe' }, cwd: dir }), /IBEX_AGENT_HEAL_DRIFT: "maybe" is not a boolean/);
    usage(() => loadConfig({ flags: { root, driftCheckIntervalSec: 'soon' }, env: {}, cwd: dir }), /--drift-check-interval-sec: "soon" is not a number/);
    usage(() => loadConfig({ flags: { root, logLevel: 'loud' }, env: {}, cwd: dir }), /--log-level: .*"debug"\|"info"|--log-level: /);
    usage(() => loadConfig({ flags: { root, controller: 'grpc://host' }, env: {}, cwd: dir }), /--controller: "grpc:\/\/host" has no port/);
    usage(() => loadConfig({ flags: { root, config: 'missing.json' }, env: {}, cwd: dir }), new RegExp(`config file ${join(dir, 'missing.json')} does not exist`));
    // Known non-setting variables are accepted.
    loadConfig({ flags: { root }, env: { IBEX_AGENT_FAILPOINTS: 'x' }, cwd: dir });
  });

  it('parses controller URLs', () => {
    assert.deepEqual(parseControllerUrl('grpc://10.0.0.1:7443'), { secure: false, target: '10.0.0.1:7443' });
    assert.deepEqual(parseControllerUrl('grpcs://ctl.example:443'), { secure: true, target: 'ctl.example:443' });
    assert.deepEqual(parseControllerUrl('grpc://[::1]:9000'), { secure: false, target: '[::1]:9000' });
    assert.throws(() => parseControllerUrl('https://x:1'), /must start with grpc:\/\//);
    assert.throws(() => parseControllerUrl('grpc://x:1/path'), /only scheme, host and port/);
    assert.throws(() => parseControllerUrl('nonsense'), /is not a URL/);
  });
});
