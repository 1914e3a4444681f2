import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { openwrtExample, openwrtSectionSchema } from '@ibex/spec';
import { renderOpenwrtConfig } from './openwrt-render.js';
import { type UciPackage, UciParseError, configFileOf, diffUci, exportUci, parseUci, quoteUci, redactBatchLine, redactUci, sameUci } from './uci.js';

/** Golden files live in the source tree (src/capabilities/openwrt/golden), next to this test's source. */
const golden = (name: string) => readFileSync(new URL(`../../../src/capabilities/openwrt/golden/${name}`, import.meta.url), 'utf8');

const example = () => openwrtSectionSchema.parse(openwrtExample);
const radios = new Map([['radio0', { phy: 'phy0', mac: '00:c0:ca:12:34:56' }]]);

describe('UCI renderer: the example spec against the golden files', () => {
  for (const pkg of renderOpenwrtConfig(example().config!, radios)) {
    it(`${pkg.name}: export text equals golden/example-${pkg.name}.export and round-trips through the parser`, () => {
      const text = golden(`example-${pkg.name}.export`);
      assert.equal(exportUci(pkg), text);
      const parsed = parseUci(text);
      assert.deepEqual(parsed, pkg);
      assert.equal(exportUci(parsed), text);
      // The config file uci commit writes is the export without its package line; it parses back too.
      assert.deepEqual(parseUci(configFileOf(pkg), pkg.name), pkg);
    });
  }

  it('renders only network, dhcp and firewall without config.wireless, and no wan pieces without a wan', () => {
    const s = openwrtSectionSchema.parse({ ...openwrtExample, links: openwrtExample.links.slice(0, 1), config: { lan: { devices: ['eth0'], address: '10.1.0.1/16', dhcp: false } } });
    const pkgs = renderOpenwrtConfig(s.config!, new Map());
    assert.deepEqual(pkgs.map((p) => p.name), ['network', 'dhcp', 'firewall']);
    const net = exportUci(pkgs[0]!);
    assert.match(net, /option netmask '255\.255\.0\.0'/);
    assert.doesNotMatch(net, /wan/);
    assert.match(exportUci(pkgs[1]!), /config dhcp 'lan'\n\toption interface 'lan'\n\toption ignore '1'\n/);
    const fw = exportUci(pkgs[2]!);
    assert.doesNotMatch(fw, /wan/, 'no wan zone, forwarding or stock wan rules');
    assert.match(fw, /config zone 'zone_lan'/);
  });
});

describe('UCI parser', () => {
  it('reads a hand-written config file (anonymous sections, tabs, bare and quoted values, comments) as uci export prints it', () => {
    const pkg = parseUci(golden('stock-firewall.conf'), 'firewall');
    assert.equal(exportUci(pkg), golden('stock-firewall.export'));
    assert.equal(pkg.sections.filter((s) => s.name === undefined).length, 6);
    assert.deepEqual(pkg.sections[2]!.options.find(([k]) => k === 'network'), ['network', ['wan', 'wan6']]);
    assert.equal(pkg.sections[6]!.name, 'custom');
  });

  it('follows libuci quoting: single quotes literal, backslash in double quotes and bare words, adjacent parts join, # and ; end things', () => {
    const pkg = parseUci(
      [
        'package t',
        "config s 'a'",
        "\toption q1 'it'\\''s'",
        '\toption q2 "say \\"hi\\" \\\\ now"',
        '\toption q3 bare\\ word',
        "\toption q4 'two\nlines'",
        '\toption q5 value#comment',
        "config s 'b'; option x 1 ; list y 'p' ; list y q",
        "\toption z 1\n\tlist z 2",
        "config s 'a'",
        '\toption more yes',
        '',
      ].join('\n'),
    );
    const a = pkg.sections[0]!;
    assert.deepEqual(Object.fromEntries(a.options), { q1: "it's", q2: 'say "hi" \\ now', q3: 'bare word', q4: 'two\nlines', q5: 'value', more: 'yes' });
    assert.deepEqual(pkg.sections[1]!.options, [
      ['x', '1'],
      ['y', ['p', 'q']],
      // list after option turns it into a list (uci_add_list on a string)
      ['z', ['1', '2']],
    ]);
    assert.equal(pkg.sections.length, 2, 'a second "config s \'a\'" continues the same section');
    // Export quotes it back; parsing that gives the same values.
    assert.deepEqual(parseUci(exportUci(pkg)), pkg);
    assert.equal(quoteUci("it's"), "'it'\\''s'");
  });

  it('reports errors with their line', () => {
    const cases: Array<[string, RegExp]> = [
      ["package t\nconfig s 'a'\n\toption x 'open", /EOF with unterminated ' at line 3/],
      ['package t\n\toption x 1', /option\/list command found before the first section at line 2/],
      ["package t\nconfig s 'bad-name'", /invalid character in name field at line 2/],
      ["package t\nconfig s 'a'\nconfig t 'a'", /section of different type overwrites prior section with same name at line 3/],
      ["package t\nconfig s 'a'\n\toption x 1 2", /too many arguments at line 3/],
      ['package t\nfrobnicate', /invalid command at line 2/],
      ["config s 'a'", /without a package name/],
      ['package other\n', /package other where t was expected/],
    ];
    for (const [text, re] of cases) assert.throws(() => parseUci(text, text.startsWith('package other') ? 't' : undefined), (e: unknown) => e instanceof UciParseError && re.test(e.message), text);
  });
});

const pkgOf = (text: string) => parseUci(text);

describe('UCI diff: uci batch lines', () => {
  it('is empty for the same package, whatever the option order', () => {
    const a = pkgOf("package n\nconfig interface 'lan'\n\toption proto 'static'\n\toption ipaddr '1.2.3.4'\n");
    const b = pkgOf("package n\nconfig interface 'lan'\n\toption ipaddr '1.2.3.4'\n\toption proto 'static'\n");
    assert.ok(sameUci(a, b));
    assert.deepEqual(diffUci(a, b), []);
  });

  it('adopts a stock firewall: anonymous sections go first, highest index of each type first, then the named ones are written', () => {
    const stock = parseUci(golden('stock-firewall.conf'), 'firewall');
    const want = renderOpenwrtConfig(example().config!, radios).find((p) => p.name === 'firewall')!;
    const lines = diffUci(stock, want);
    assert.deepEqual(lines.slice(0, 7), [
      'delete firewall.@rule[1]',
      'delete firewall.@rule[0]',
      'delete firewall.@forwarding[0]',
      'delete firewall.@zone[1]',
      'delete firewall.@zone[0]',
      'delete firewall.@defaults[0]',
      'delete firewall.custom',
    ]);
    // @rule counts the named rule too: it is the third rule, and the anonymous ones are 0 and 1.
    assert.equal(lines[7], 'set firewall.defaults=defaults');
    assert.ok(lines.includes("set firewall.zone_wan.name='wan'"));
    assert.ok(lines.includes("add_list firewall.zone_wan.network='wan6'"));
    assert.ok(!lines.some((l) => l.startsWith('reorder')), 'new sections are appended in order: nothing to reorder');
  });

  it('counts named sections in @type[index]', () => {
    const cur = pkgOf("package p\nconfig rule 'named'\n\toption a 1\nconfig rule\n\toption a 2\nconfig rule\n\toption a 3\n");
    assert.deepEqual(diffUci(cur, pkgOf("package p\nconfig rule 'named'\n\toption a 1\n")), ['delete p.@rule[2]', 'delete p.@rule[1]']);
  });

  it('changes options in place: set, delete, lists rebuilt whole, a list turned into a string deleted first', () => {
    const cur = pkgOf("package p\nconfig s 'x'\n\toption keep 1\n\toption change old\n\toption gone 1\n\tlist l a\n\tlist l b\n\tlist tostr a\n\toption tolist v\n");
    const want = pkgOf("package p\nconfig s 'x'\n\toption keep 1\n\toption change new\n\tlist l a\n\tlist l c\n\toption tostr s\n\tlist tolist v\n\tlist tolist w\n\toption added 'with space'\n");
    assert.deepEqual(diffUci(cur, want), [
      'delete p.x.gone',
      "set p.x.change='new'",
      'delete p.x.l',
      "add_list p.x.l='a'",
      "add_list p.x.l='c'",
      'delete p.x.tostr',
      "set p.x.tostr='s'",
      'delete p.x.tolist',
      "add_list p.x.tolist='v'",
      "add_list p.x.tolist='w'",
      "set p.x.added='with space'",
    ]);
  });

  it('recreates a section whose type changes, and reorders sections that exist in another order', () => {
    const cur = pkgOf("package p\nconfig a 'one'\nconfig b 'two'\nconfig c 'three'\n\toption k v\n");
    const want = pkgOf("package p\nconfig c 'three'\n\toption k v\nconfig a 'one'\nconfig z 'two'\n");
    assert.deepEqual(diffUci(cur, want), ['delete p.two', 'set p.two=z', 'reorder p.three=0']);
  });

  it('quotes values with quotes and spaces so uci batch reads them back', () => {
    const want = pkgOf(`package p\nconfig s 'x'\n\toption v 'it'\\''s a "test"'\n`);
    assert.deepEqual(diffUci(pkgOf('package p\n'), want), ['set p.x=s', `set p.x.v='it'\\''s a "test"'`]);
  });

  it('refuses a desired package with anonymous sections (it could not be addressed)', () => {
    assert.throws(() => diffUci(pkgOf('package p\n'), pkgOf('package p\nconfig s\n')), /anonymous s section/);
  });
});

describe('UCI secrets', () => {
  it('redacts keys and passwords in packages and batch lines, and nothing else', () => {
    const w: UciPackage = renderOpenwrtConfig(example().config!, radios).find((p) => p.name === 'wireless')!;
    const text = exportUci(redactUci(w));
    assert.doesNotMatch(text, /correct horse/);
    assert.match(text, /option key '\(redacted\)'/);
    assert.match(text, /option ssid 'Ibex Lab'/);
    assert.equal(redactBatchLine("set wireless.default_radio0.key='correct horse'"), "set wireless.default_radio0.key='(redacted)'");
    assert.equal(redactBatchLine("add_list network.wg0.private_key='x'"), "add_list network.wg0.private_key='(redacted)'");
    assert.equal(redactBatchLine("set wireless.default_radio0.ssid='keyless'"), "set wireless.default_radio0.ssid='keyless'");
  });
});
