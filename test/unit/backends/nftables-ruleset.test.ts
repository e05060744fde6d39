import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  chooseAnchor,
  createNftablesBackend,
  type NftRuleset,
  nftScriptProblem,
  ourRules,
  ourTableState,
  parseNftRuleset,
  parseOurSetName,
  planNftAllow,
  planNftRevoke,
} from '../../../src/backends/nftables.ts';
import { FirewallError } from '../../../src/errors.ts';
import { type FirewallRule, specKey, specOfRule } from '../../../src/rules.ts';
import { ruleSummary, v4, v6 } from '../../support/builders.ts';
import { capturedRuns, createRecordingRunner } from './recording-runner.ts';

const { run } = capturedRuns(new URL('../../fixtures/nftables/', import.meta.url));

/** The ruleset real nft listed in the run named `name` (test/fixtures/nftables/outputs.json). */
function listed(name: string): NftRuleset {
  return parseNftRuleset(run(`list-${name}`).stdout);
}

/** The rules listRules returns over a captured listing. */
async function listRulesOf(name: string, placement: { chain?: string } = {}): Promise<FirewallRule[]> {
  const output = run(`list-${name}`);
  const { runner } = createRecordingRunner(() => ({ exitCode: 0, stdout: output.stdout, stderr: '' }));
  return createNftablesBackend({ runner, timeoutMs: 1, ...placement }).listRules();
}

describe('nftables: reading `nft -j list ruleset`', () => {
  it('reads tables, chains (with hook and policy), sets (type, flags, elements) and rules in chain order', () => {
    const ruleset = listed('after-allow-1');
    assert.equal(ruleset.version, '1.0.6');
    assert.deepEqual(ruleset.tables, [{ family: 'inet', name: 'filter' }]);
    assert.deepEqual(
      ruleset.chains.find((chain) => chain.name === 'input'),
      { family: 'inet', table: 'filter', name: 'input', hook: 'input', type: 'filter', policy: 'drop' },
    );
    assert.deepEqual(
      ruleset.sets.map((set) => [set.name, set.type.join(' . '), set.flags.join(','), set.elements.length]),
      [
        ['moshwall_v4_any', 'inet_service', '', 2],
        ['moshwall_v6_any', 'inet_service', '', 1],
        ['moshwall_v4_net8', 'ipv4_addr . inet_service', 'interval', 1],
        ['moshwall_v6_net32', 'ipv6_addr . inet_service', 'interval', 1],
        ['moshwall_v4_net32', 'ipv4_addr . inet_service', 'interval', 1],
      ],
    );
    assert.equal(ruleset.rules.filter((rule) => rule.chain === 'input')[0]?.comment, 'moshwall');
  });

  it('accepts the one-or-many forms nft prints for set types and flags, and element wrappers', () => {
    const ruleset = parseNftRuleset(
      JSON.stringify({
        nftables: [
          {
            set: {
              family: 'inet',
              table: 't',
              name: 's',
              type: 'inet_service',
              flags: 'interval',
              elem: [{ elem: { val: 60001, timeout: 30 } }, 60002],
            },
          },
        ],
      }),
    );
    assert.deepEqual(ruleset.sets[0], {
      family: 'inet',
      table: 't',
      name: 's',
      type: ['inet_service'],
      flags: ['interval'],
      elements: [60001, 60002],
    });
  });

  const broken: [string, string][] = [
    ['not JSON', 'Error: JSON support not compiled-in'],
    ['no nftables array', '{"rules": []}'],
    [
      'a rule without a handle',
      '{"nftables": [{"rule": {"family": "inet", "table": "t", "chain": "c", "expr": []}}]}',
    ],
    ['a chain without a name', '{"nftables": [{"chain": {"family": "inet", "table": "t"}}]}'],
    ['a set without a type', '{"nftables": [{"set": {"family": "inet", "table": "t", "name": "s"}}]}'],
  ];
  for (const [name, text] of broken) {
    it(`refuses ${name}`, () => {
      assert.throws(() => parseNftRuleset(text), FirewallError);
    });
  }
});

describe('nftables: elements on their way out (revoke by expiry)', () => {
  it('an element with a timeout under a second (what nft prints just after our 1 ms expiry) is not listed', () => {
    // As nft 1.0.6 printed it within a kernel tick of `add element … { 2 timeout 1ms }`.
    const stdout = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
        { table: { family: 'inet', name: 'filter', handle: 1 } },
        {
          set: {
            family: 'inet',
            name: 'moshwall_v4_any',
            table: 'filter',
            type: 'inet_service',
            handle: 1,
            flags: ['timeout'],
            elem: [
              1,
              { elem: { val: 2, timeout: 0, expires: 0 } },
              { elem: { val: 3, timeout: 3600, expires: 3599 } },
            ],
          },
        },
      ],
    });
    assert.deepEqual(parseNftRuleset(stdout).sets[0]?.elements, [1, 3]);
  });
});

describe('nftables: the admin’s rules as FirewallRules', () => {
  it('reads every form of the forms ruleset, and marks what it cannot read as protocol "other"', async () => {
    assert.deepEqual((await listRulesOf('forms')).map(ruleSummary), [
      'v4 allow other any from 0.0.0.0/0', // ct state established,related accept
      'v6 allow other any from ::/0',
      'v4 deny other any from 0.0.0.0/0', // ct state invalid drop
      'v6 deny other any from ::/0',
      'v4 allow any any from 0.0.0.0/0 on lo',
      'v6 allow any any from ::/0 on lo',
      'v4 allow udp 60020 from 0.0.0.0/0 on eth0',
      'v6 allow udp 60020 from ::/0 on eth0',
      'v4 allow tcp 22 from 0.0.0.0/0',
      'v6 allow tcp 22 from ::/0',
      'v4 allow udp 60010 from 0.0.0.0/0',
      'v6 allow udp 60010 from ::/0',
      'v4 allow udp 60011 from 0.0.0.0/0 "admin mosh"',
      'v6 allow udp 60011 from ::/0 "admin mosh"',
      'v4 allow udp 60100-60200 from 0.0.0.0/0',
      'v6 allow udp 60100-60200 from ::/0',
      'v4 allow udp 60001,60005-60009 from 0.0.0.0/0',
      'v6 allow udp 60001,60005-60009 from ::/0',
      'v4 allow udp 60050 from 0.0.0.0/0', // meta l4proto udp th dport (nft lists it as udp dport)
      'v6 allow udp 60050 from ::/0',
      'v4 allow udp 60051 from 0.0.0.0/0', // meta l4proto { tcp, udp } th dport
      'v6 allow udp 60051 from ::/0',
      'v4 allow any 60052 from 0.0.0.0/0', // th dport: any transport
      'v6 allow any 60052 from ::/0',
      'v4 allow udp 60080 from 10.0.0.0/8',
      'v4 allow udp 60081 from 10.0.0.1/32',
      'v6 allow udp 60085 from 2001:db8::/32',
      'v4 allow udp 60086 from 10.0.0.0/8', // ip saddr { 10.0.0.0/8, 192.168.0.0/16 }
      'v4 allow udp 60086 from 192.168.0.0/16',
      'v4 allow udp 60087 from 0.0.0.0/0', // meta nfproto ipv4
      'v6 allow udp 60088 from ::/0', // meta nfproto ipv6
      'v4 deny udp 60030 from 0.0.0.0/0',
      'v6 deny udp 60030 from ::/0',
      'v4 reject udp 60040 from 0.0.0.0/0',
      'v6 reject udp 60040 from ::/0',
      'v4 allow udp 60041 from 0.0.0.0/0', // counter
      'v6 allow udp 60041 from ::/0',
      'v4 allow udp 60042 from 0.0.0.0/0', // log
      'v6 allow udp 60042 from ::/0',
      'v4 limit udp 60043 from 0.0.0.0/0',
      'v6 limit udp 60043 from ::/0',
      'v4 allow udp 60093 from 0.0.0.0/0 sport 123',
      'v6 allow udp 60093 from ::/0 sport 123',
      'v4 allow udp 60094 from 0.0.0.0/0 to 192.168.1.10/32',
      'v4 deny other any from 0.0.0.0/0', // udp dport != 60095 drop
      'v6 deny other any from ::/0',
      'v4 allow udp 60070,60071 from 0.0.0.0/0', // udp dport @admin_ports
      'v6 allow udp 60070,60071 from ::/0',
      'v4 allow other 60072 from 0.0.0.0/0', // ip saddr @admin_nets: a named address set is not read
      'v4 allow udp any from 0.0.0.0/0', // ip protocol udp
      'v4 allow udp any from 0.0.0.0/0', // meta l4proto udp
      'v6 allow udp any from ::/0',
      'v4 other udp 60060 from 0.0.0.0/0', // jump other
      'v6 other udp 60060 from ::/0',
      'v6 allow other any from ::/0', // ip6 nexthdr ipv6-icmp
      'v4 allow udp 60096 from 10.1.0.0/16',
      'v4 allow udp 60097 from 0.0.0.0/0 "größe # mosh"',
      'v6 allow udp 60097 from ::/0 "größe # mosh"',
      'v4 reject udp 60098 from 0.0.0.0/0',
      'v6 reject udp 60098 from ::/0',
      'v4 allow udp 60099 from 0.0.0.0/0 "moshwall"', // our comment on an admin rule: still not ours
      'v6 allow udp 60099 from ::/0 "moshwall"',
      'v4 deny any any from 0.0.0.0/0', // counter drop
      'v6 deny any any from ::/0',
      'OURS v4 allow udp 60001 from 0.0.0.0/0 "moshwall"',
      'OURS v4 allow udp 60003 from 0.0.0.0/0 "moshwall"',
      'OURS v6 allow udp 60001 from ::/0 "moshwall"',
      'OURS v4 allow udp 60002 from 10.0.0.0/8 "moshwall"',
      'OURS v6 allow udp 60002 from 2001:db8::/32 "moshwall"',
      'OURS v4 allow udp 60003 from 192.0.2.7/32 "moshwall"',
    ]);
  });

  it('gives every rule nft-like text with its place, our jump aside', async () => {
    const rules = await listRulesOf('forms');
    assert.equal(rules[0]?.raw, 'inet filter input handle 6: ct state established,related accept');
    assert.ok(
      rules.some(
        (rule) => rule.raw === 'inet filter input handle 12: udp dport 60011 accept comment "admin mosh"',
      ),
    );
    assert.ok(rules.every((rule) => !rule.raw.includes('jump moshwall_input')));
    assert.equal(rules.at(-1)?.raw, 'element 192.0.2.7/32 . 60003 of set inet filter moshwall_v4_net32');
  });

  it('an admin rule with exactly our shape has a spec but is never ours', async () => {
    const rules = await listRulesOf('forms');
    const foreign = rules
      .filter((rule) => !rule.ours && specOfRule(rule) !== undefined)
      .map((rule) => specKey(specOfRule(rule) ?? v4(1)));
    assert.ok(foreign.includes(specKey(v4(60010))));
    assert.ok(foreign.includes(specKey(v4(60080, '10.0.0.0/8'))));
    assert.ok(!foreign.includes(specKey(v4(60020))), 'an interface-bound rule has no spec');
  });

  it('an ip table reads as v4 only, with its own chain', async () => {
    assert.deepEqual((await listRulesOf('ip-only-after-allow')).map(ruleSummary), [
      'v4 allow tcp 22 from 0.0.0.0/0',
      'OURS v4 allow udp 60001 from 0.0.0.0/0 "moshwall"',
    ]);
  });
});

describe('nftables: which elements are ours', () => {
  it('lists our elements only while the jump and our set rule put them in force', () => {
    assert.deepEqual(
      ourRules(listed('after-allow-2')).map((rule) => specKey(specOfRule(rule) ?? v4(1))),
      [
        specKey(v4(60001)), // nft lists a set's elements sorted
        specKey(v4(60002)),
        specKey(v4(60003)),
        specKey(v6(60001)),
        specKey(v4(60002, '10.0.0.0/8')),
        specKey(v6(60002, '2001:db8::/32')),
        specKey(v4(60003, '192.0.2.7/32')),
        specKey(v4(60002, '10.1.0.0/16')),
      ],
    );
    const gone = ourTableState(listed('jump-gone'), 'inet', 'filter');
    assert.deepEqual(gone.jumpsFrom, []);
    assert.equal(
      gone.sets.reduce((count, set) => count + set.specs.length, 0),
      5,
    );
    assert.deepEqual(ourRules(listed('jump-gone')), []);
  });

  it('knows our set names and nothing else', () => {
    assert.deepEqual(parseOurSetName('moshwall_v4_any'), {
      name: 'moshwall_v4_any',
      family: 'v4',
      prefix: 0,
    });
    assert.deepEqual(parseOurSetName('moshwall_v6_net128'), {
      name: 'moshwall_v6_net128',
      family: 'v6',
      prefix: 128,
    });
    for (const name of [
      'moshwall_v4_net33',
      'moshwall_v4_net0',
      'moshwall_v4_net08',
      'moshwall_v5_any',
      'admin_ports',
      'moshwall_v4',
    ]) {
      assert.equal(parseOurSetName(name), undefined, name);
    }
  });
});

describe('nftables: where our jump goes', () => {
  const cases: [string, { family?: string; table?: string; chain?: string; problem?: RegExp }][] = [
    ['debian', { family: 'inet', table: 'filter', chain: 'input' }],
    ['debian-drop', { family: 'inet', table: 'filter', chain: 'input' }],
    ['forms', { family: 'inet', table: 'filter', chain: 'input' }],
    ['jumps', { family: 'inet', table: 'filter', chain: 'input' }],
    ['ip-only', { family: 'ip', table: 'fw', chain: 'in4' }],
    ['empty', { problem: /^no table has a filter chain on the input hook$/ }],
    ['split', { problem: /several input chains drop input \(ip filter4 input, ip6 filter6 input\)/ }],
    [
      'firewalld',
      { problem: /inet firewalld filter_INPUT \(firewalld \(use the firewalld backend\)\) drops input/ },
    ],
    [
      'iptables-nft',
      { problem: /ip filter INPUT \(iptables-nft \(use the iptables backend\)\) drops input/ },
    ],
  ];
  for (const [name, expected] of cases) {
    it(`discovers ${expected.problem === undefined ? `${expected.family} ${expected.table} ${expected.chain}` : 'no chain'} in the ${name} ruleset`, () => {
      const choice = chooseAnchor(listed(name), {});
      if (expected.problem !== undefined) {
        assert.equal(choice.anchor, undefined);
        assert.match(choice.problem ?? '', expected.problem);
      } else {
        assert.deepEqual(choice.anchor, {
          family: expected.family,
          table: expected.table,
          chain: expected.chain,
        });
      }
    });
  }

  it('explains why a chain drops input, through jumps', () => {
    const [jumps] = chooseAnchor(listed('jumps'), {}).inputChains;
    assert.match(
      jumps?.blocks ?? '',
      /^rule handle \d+ jumps to services, where rule handle \d+ drops or rejects$/,
    );
    const [debian] = chooseAnchor(listed('debian'), {}).inputChains;
    assert.equal(debian?.blocks, undefined);
  });

  it('takes a configured table and chain, warns about other chains that drop, refuses what does not exist or is not the admin’s', () => {
    const split = listed('split');
    const chosen = chooseAnchor(split, { table: { family: 'ip', name: 'filter4' } });
    assert.deepEqual(chosen.anchor, { family: 'ip', table: 'filter4', chain: 'input' });
    assert.match(chosen.warnings.join('\n'), /ip6 filter6 input also drops input \(policy drop\)/);
    assert.match(chooseAnchor(split, { chain: 'input' }).problem ?? '', /matches 2 chains/);
    assert.match(
      chooseAnchor(split, { table: { family: 'inet', name: 'filter' } }).problem ?? '',
      /does not exist/,
    );
    assert.match(
      chooseAnchor(listed('iptables-nft'), { table: { family: 'ip', name: 'filter' }, chain: 'INPUT' })
        .problem ?? '',
      /belongs to iptables-nft/,
    );
    assert.match(
      chooseAnchor(listed('after-allow-1'), { chain: 'moshwall_input' }).problem ?? '',
      /belongs to moshwall itself/,
    );
    const regular = chooseAnchor(listed('jumps'), {
      table: { family: 'inet', name: 'filter' },
      chain: 'services',
    });
    assert.deepEqual(regular.anchor, { family: 'inet', table: 'filter', chain: 'services' });
  });
});

describe('nftables: planning and guarding scripts', () => {
  it('puts a v4 spec whose source nests in another one of the same port in another set (no overlap refused)', () => {
    const plan = planNftAllow(listed('after-allow-1'), { family: 'inet', table: 'filter', chain: 'input' }, [
      v4(60002, '10.1.0.0/16'),
      v4(60002, '10.1.2.0/24'),
    ]);
    assert.match(
      plan?.script ?? '',
      /add element inet filter moshwall_v4_net16 \{ 10\.1\.0\.0\/16 \. 60002 \}\nadd element inet filter moshwall_v4_net24 \{ 10\.1\.2\.0\/24 \. 60002 \}\n$/,
    );
  });

  it('refuses to add to a set of our name that has another type', () => {
    const ruleset = listed('after-allow-1');
    const tampered = {
      ...ruleset,
      sets: ruleset.sets.map((set) =>
        set.name === 'moshwall_v4_any' ? { ...set, type: ['ipv4_addr'] } : set,
      ),
    };
    assert.throws(
      () => planNftAllow(tampered, { family: 'inet', table: 'filter', chain: 'input' }, [v4(60004)]),
      /Set moshwall_v4_any in inet filter was not made by moshwall/,
    );
  });

  it('revokes only elements that exist, in every table that has them', () => {
    assert.equal(planNftRevoke(listed('after-revoke-1'), [v4(60001), v6(60009)]), undefined);
    assert.equal(
      planNftRevoke(listed('jump-gone'), [v4(60003)])?.script,
      'delete element inet filter moshwall_v4_any { 60003 }\n',
    );
  });

  const refused: [string, string][] = [
    ['flush ruleset', 'flush ruleset\n'],
    ['a rule of the admin deleted', 'delete rule inet filter input handle 3\n'],
    ['our chain flushed', 'flush chain inet filter moshwall_input\n'],
    ['an admin set flushed', 'flush set inet filter admin_ports\n'],
    ['an element in an admin set', 'add element inet filter admin_ports { 60001 }\n'],
    ['a port out of range', 'add element inet filter moshwall_v4_any { 65536 }\n'],
    ['port 0', 'add element inet filter moshwall_v4_any { 0 }\n'],
    ['a network with host bits', 'add element inet filter moshwall_v4_net8 { 10.0.0.1/8 . 60001 }\n'],
    ['a network of another length', 'add element inet filter moshwall_v4_net8 { 10.0.0.0/16 . 60001 }\n'],
    ['a v6 network in a v4 set', 'add element inet filter moshwall_v4_net32 { 2001:db8::/32 . 60001 }\n'],
    ['a source in the any set', 'add element inet filter moshwall_v4_any { 10.0.0.0/8 . 60001 }\n'],
    [
      'a statement smuggled into an element',
      'add element inet filter moshwall_v4_any { 60001 }; flush ruleset\n',
    ],
    ['a second command on a line', 'add element inet filter moshwall_v4_any { 60001 }\nflush ruleset\n'],
    [
      'an accept of everything in our chain',
      'add rule inet filter moshwall_input accept comment "moshwall"\n',
    ],
    ['a jump without our comment', 'insert rule inet filter input jump moshwall_input\n'],
    ['a script without its final newline', 'add element inet filter moshwall_v4_any { 60001 }'],
  ];
  for (const [name, script] of refused) {
    it(`the guard refuses ${name}`, () => {
      assert.notEqual(nftScriptProblem(script), undefined);
    });
  }
});
