import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FakeOpenwrtHost } from './fake-openwrt-host.js';

/**
 * The uci stand-in (openwrt-standin/uci.awk) that the openwrt tests put in place of OpenWrt's
 * uci: checked against uci's own behaviour (its cli.c and file.c, and the cases of its test
 * suite), so a test passing against it means something. No root needed.
 */

function standin(t: { after: (fn: () => void) => void }, configs: Record<string, string> = { p: "\nconfig t 'a'\n\toption x '1'\n\nconfig t\n\toption x '2'\n\nconfig u 'b'\n\n" }) {
  const f = new FakeOpenwrtHost(configs);
  t.after(() => f.destroy());
  const file = (n: string) => readFileSync(join(f.uciDir, 'config', n), 'utf8');
  return { f, uci: (args: string[], input?: string) => f.uci(args, input), file, staged: (n: string) => existsSync(join(f.uciDir, 'save', n)) };
}

describe('the uci stand-in behaves like uci', () => {
  it('export prints the package in uci export format; a missing package is "Entry not found", exit 1', (t) => {
    const { uci } = standin(t);
    assert.deepEqual(uci(['export', 'p']), { code: 0, signal: null, stdout: "package p\n\nconfig t 'a'\n\toption x '1'\n\nconfig t\n\toption x '2'\n\nconfig u 'b'\n\n", stderr: '' });
    const missing = uci(['export', 'nope']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'uci: Entry not found\n');
  });

  it('batch stages until commit: export shows the staged state, the file changes only at commit', (t) => {
    const { uci, file, staged } = standin(t);
    const before = file('p');
    assert.equal(uci(['batch'], "set p.a.x='changed'\nset p.c=t\nset p.c.y='it'\\''s'\n").code, 0);
    assert.equal(file('p'), before, 'not committed yet');
    assert.ok(staged('p'));
    assert.match(uci(['export', 'p']).stdout, /option x 'changed'[\s\S]*config t 'c'\n\toption y 'it'\\''s'/);
    assert.equal(uci(['batch'], 'commit p\n').code, 0);
    assert.ok(!staged('p'));
    assert.match(file('p'), /^\nconfig t 'a'\n\toption x 'changed'\n/);
  });

  it('a failing batch command prints its error and the batch goes on; the exit status stays 0', (t) => {
    const { uci } = standin(t);
    const r = uci(['batch'], "set p.nosuch.x='1'\nset p.a.x='3'\ndelete p.a.nosuch\n");
    assert.equal(r.code, 0);
    assert.equal(r.stderr, 'uci: Entry not found\nuci: Entry not found\n');
    assert.match(uci(['export', 'p']).stdout, /config t 'a'\n\toption x '3'/);
  });

  it('@type[N] counts named sections too, negative from the end; delete, reorder, add_list on a string', (t) => {
    const { uci } = standin(t);
    assert.equal(uci(['get', 'p.@t[1].x']).stdout, '2\n');
    assert.equal(uci(['get', 'p.@t[-1].x']).stdout, '2\n');
    uci(['batch'], "add_list p.a.x='more'\nreorder p.b=0\ndelete p.@t[1]\ncommit p\n");
    assert.equal(uci(['export', 'p']).stdout, "package p\n\nconfig u 'b'\n\nconfig t 'a'\n\tlist x '1'\n\tlist x 'more'\n\n");
  });

  it('revert drops what is staged; import replaces the package and commits it', (t) => {
    const { uci, file, staged } = standin(t);
    const before = file('p');
    uci(['batch'], "set p.a.x='9'\n");
    assert.ok(staged('p'));
    uci(['revert', 'p']);
    assert.ok(!staged('p'));
    assert.equal(uci(['export', 'p']).stdout.includes("'9'"), false);
    assert.equal(file('p'), before);
    assert.equal(uci(['import', 'p'], "package p\nconfig z 'only'\n\toption k \"v w\"\n").code, 0);
    assert.equal(file('p'), "\nconfig z 'only'\n\toption k 'v w'\n\n");
    assert.equal(uci(['import', 'p'], "config z 'x'\n\toption k 'open\n").code, 1, 'a parse error changes nothing');
    assert.equal(file('p'), "\nconfig z 'only'\n\toption k 'v w'\n\n");
  });

  it('reads files the way libuci does: bare and double-quoted values, comments, ";"', (t) => {
    const { uci } = standin(t, { q: '# comment\nconfig t "a" ; option x bare # tail\n\toption y "dq \\"q\\""\n' });
    assert.equal(uci(['export', 'q']).stdout, "package q\n\nconfig t 'a'\n\toption x 'bare'\n\toption y 'dq \"q\"'\n\n");
  });
});
