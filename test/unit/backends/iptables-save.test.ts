import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  inputBlockingReason,
  ourChainState,
  parseIptablesSave,
  planIptablesAllow,
  restoreInputProblem,
  type SavedTable,
  specOfOurWords,
  splitSaveWords,
  tableRules,
} from '../../../src/backends/iptables.ts';
import { FirewallError } from '../../../src/errors.ts';
import { specKey, specOfRule } from '../../../src/rules.ts';
import { ruleSummary, v4, v6 } from '../../support/builders.ts';
import { capturedRuns } from './recording-runner.ts';

const { run } = capturedRuns(new URL('../../fixtures/iptables/', import.meta.url));

/** The filter table real iptables-save printed in the run named `name`. */
function saved(name: string): SavedTable {
  const output = run(name);
  return parseIptablesSave(output.stdout, output.argv.join(' '));
}

describe('iptables: reading iptables-save', () => {
  it('splits words as iptables-restore does: double quotes, backslash escapes', () => {
    assert.deepEqual(splitSaveWords('-A INPUT -m comment --comment "größe \\"q\\" \\\\x" -j ACCEPT'), [
      '-A',
      'INPUT',
      '-m',
      'comment',
      '--comment',
      'größe "q" \\x',
      '-j',
      'ACCEPT',
    ]);
    assert.deepEqual(splitSaveWords('--comment ""'), ['--comment', '']);
    assert.equal(splitSaveWords('--comment "open'), undefined);
  });

  for (const variant of ['nft', 'legacy']) {
    it(`reads policies and rules of iptables-${variant}-save, comments and counters aside`, () => {
      const table = saved(`save-${variant}-v4-after-allow-1`);
      assert.deepEqual(
        [...table.policies],
        [
          ['INPUT', 'DROP'],
          ['FORWARD', 'ACCEPT'],
          ['OUTPUT', 'ACCEPT'],
          ['moshwall-input', '-'],
        ],
      );
      assert.deepEqual(
        table.rules.map((rule) => rule.chain),
        ['INPUT', 'INPUT', 'moshwall-input', 'moshwall-input', 'moshwall-input'],
      );
      assert.equal(table.rules[1]?.line, '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT');
    });
  }

  it('reads an empty output as an empty table, and refuses lines save never prints', () => {
    assert.deepEqual(parseIptablesSave('', 'iptables-save -t filter'), { policies: new Map(), rules: [] });
    assert.throws(() => parseIptablesSave('*filter\n-I INPUT 1 -j ACCEPT\nCOMMIT\n', 'x'), FirewallError);
    assert.throws(() => parseIptablesSave('*filter\n:INPUT\nCOMMIT\n', 'x'), FirewallError);
    assert.throws(() => parseIptablesSave('*filter\n-A INPUT --comment "x\nCOMMIT\n', 'x'), FirewallError);
    assert.deepEqual(parseIptablesSave('*nat\n-A PREROUTING -j DNAT\nCOMMIT\n', 'x').rules, []);
    assert.throws(
      () =>
        parseIptablesSave(
          "# Table `filter' is incompatible, use 'nft' tool.\n",
          'iptables-nft-save -t filter',
        ),
      /line 1: Table `filter' is incompatible/,
    );
  });
});

describe('iptables: the rules as FirewallRules', () => {
  for (const variant of ['nft', 'legacy']) {
    it(`reads every admin form of the ${variant} forms table, our rules flagged, the rest "other" when unread`, () => {
      assert.deepEqual(tableRules(saved(`save-${variant}-v4-forms`), 'v4').map(ruleSummary), [
        'v4 allow other any from 0.0.0.0/0', // conntrack
        'v4 allow any any from 0.0.0.0/0 on lo',
        'v4 allow tcp 22 from 0.0.0.0/0',
        'v4 allow udp 60010 from 0.0.0.0/0',
        'v4 allow udp 60011 from 0.0.0.0/0 "admin mosh"',
        'v4 allow udp 60100-60200 from 0.0.0.0/0',
        'v4 allow udp 60001,60005-60009 from 0.0.0.0/0',
        'v4 allow udp 60080 from 10.0.0.0/8',
        'v4 allow udp 60081 from 10.0.0.1/32',
        'v4 allow udp 60083 from 10.0.0.0/255.0.255.0',
        'v4 allow udp 60020 from 0.0.0.0/0 on eth0',
        'v4 deny udp 60030 from 0.0.0.0/0',
        'v4 reject udp 60040 from 0.0.0.0/0',
        'v4 other other 60042 from 0.0.0.0/0', // -j LOG --log-prefix
        'v4 limit udp 60043 from 0.0.0.0/0',
        'v4 allow udp 60093 from 0.0.0.0/0 sport 123',
        'v4 allow udp 60094 from 0.0.0.0/0 to 192.168.1.10/32',
        'v4 deny other 60095 from 0.0.0.0/0', // ! --dport
        'v4 allow other 60096 from 10.0.0.0/8', // ! -s
        'v4 other udp 60060 from 0.0.0.0/0', // -j services
        'v4 allow udp 60097 from 0.0.0.0/0 "größe "q" \\x"',
        'v4 allow udp 60099 from 0.0.0.0/0 "moshwall"', // our comment in INPUT: not ours
        'v4 allow other any from 0.0.0.0/0', // -p icmp
        'v4 allow udp any from 0.0.0.0/0',
        'OURS v4 allow udp 60001 from 0.0.0.0/0 "moshwall"',
        'OURS v4 allow udp 60002 from 10.0.0.0/8 "moshwall"',
        'OURS v4 allow udp 60003 from 192.0.2.7/32 "moshwall"',
        'v4 allow udp 60098 from 0.0.0.0/0', // in our chain, not our shape
      ]);
      assert.deepEqual(tableRules(saved(`save-${variant}-v6-forms`), 'v6').map(ruleSummary), [
        'v6 allow other any from ::/0',
        'v6 allow udp 60085 from 2001:db8::/32',
        'v6 allow udp 60086 from 2001:db8::1/128',
      ]);
    });
  }

  it('keeps the raw line, and foreign rules with our exact shape have a spec but are not ours', () => {
    const rules = tableRules(saved('save-nft-v4-forms'), 'v4');
    assert.equal(rules[3]?.raw, '-A INPUT -p udp -m udp --dport 60010 -j ACCEPT');
    const foreign = rules
      .filter((rule) => !rule.ours && specOfRule(rule) !== undefined)
      .map((rule) => specKey(specOfRule(rule) ?? v4(1)));
    // Whatever the action: a deny with exactly a spec's match is what reconcile calls a conflict.
    assert.deepEqual(
      foreign,
      [60010, 60011, 60080, 60081, 60030, 60040, 60043, 60060, 60097, 60099, 60098].map((port) =>
        specKey(
          port === 60080 ? v4(port, '10.0.0.0/8') : port === 60081 ? v4(port, '10.0.0.1/32') : v4(port),
        ),
      ),
    );
  });

  it('lists our rules only while the jump puts them in force', () => {
    assert.equal(tableRules(saved('save-nft-v4-jump-gone'), 'v4').filter((rule) => rule.ours).length, 0);
    const state = ourChainState(saved('save-nft-v4-jump-gone'), 'v4', specKey);
    assert.deepEqual(
      [state.chainExists, state.jump, [...state.specs.keys()]],
      [true, false, [specKey(v4(60003, '192.0.2.7/32'))]],
    );
    assert.deepEqual(
      tableRules(saved('save-legacy-v4-after-allow-2'), 'v4')
        .filter((rule) => rule.ours)
        .map(ruleSummary),
      ['OURS v4 allow udp 60004 from 0.0.0.0/0 "moshwall"'],
    );
  });

  it('recognises our rule word for word and nothing near it', () => {
    const words = (text: string) => text.split(' ');
    const tail = '-p udp -m udp --dport 60001 -m comment --comment moshwall -j ACCEPT';
    assert.deepEqual(specOfOurWords(words(tail), 'v4'), v4(60001));
    assert.deepEqual(specOfOurWords(words(`-s 10.0.0.0/8 ${tail}`), 'v4'), v4(60001, '10.0.0.0/8'));
    assert.deepEqual(specOfOurWords(words(`-s 2001:db8::/32 ${tail}`), 'v6'), v6(60001, '2001:db8::/32'));
    for (const near of [
      `-s 0.0.0.0/0 ${tail}`,
      `-s 10.0.0.1/8 ${tail}`,
      `-s 2001:db8::/32 ${tail}`,
      `-i eth0 ${tail}`,
      tail.replace('60001', '60001:60002'),
      tail.replace('60001', '0'),
      tail.replace('60001', '070001'),
      tail.replace('moshwall', 'admin'),
      tail.replace('ACCEPT', 'DROP'),
      `${tail} --log-prefix x`,
    ]) {
      assert.equal(specOfOurWords(words(near), 'v4'), undefined, near);
    }
  });

  it('says why INPUT drops: policy, a DROP/REJECT rule, or a chain it jumps to', () => {
    assert.equal(inputBlockingReason(saved('save-nft-v4-fresh')), undefined);
    assert.equal(inputBlockingReason(saved('save-nft-v4-baseline')), 'policy DROP');
    const jumps = parseIptablesSave(
      '*filter\n:INPUT ACCEPT [0:0]\n:svc - [0:0]\n-A INPUT -j svc\n-A svc -p udp -j REJECT\nCOMMIT\n',
      'x',
    );
    assert.equal(inputBlockingReason(jumps), '`-A INPUT -j svc` leads to `-A svc -p udp -j REJECT`');
  });
});

describe('iptables: planning and guarding restore input', () => {
  it('deletes a duplicated rule of ours as many times as it is there', () => {
    const table = saved('save-nft-v4-after-allow-1');
    const duplicated = {
      ...table,
      rules: [...table.rules, ...table.rules.filter((rule) => rule.line.includes('--dport 60001 '))],
    };
    assert.equal(ourChainState(duplicated, 'v4', specKey).specs.get(specKey(v4(60001)))?.count, 2);
  });

  it('leaves specs of the other family to the other table', () => {
    assert.equal(planIptablesAllow(saved('save-nft-v4-baseline'), 'v4', [v6(60001)]), undefined);
  });

  const refused: [string, string][] = [
    ['a flush of INPUT', '*filter\n-F INPUT\nCOMMIT\n'],
    ['a policy change', '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n'],
    ['an admin rule deleted', '*filter\n-D INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n'],
    ['an accept of everything in our chain', '*filter\n-A moshwall-input -j ACCEPT\nCOMMIT\n'],
    [
      'a v6 source in v4 input',
      '*filter\n-A moshwall-input -s 2001:db8::/32 -p udp -m udp --dport 60001 -m comment --comment moshwall -j ACCEPT\nCOMMIT\n',
    ],
    ['another table', '*nat\nCOMMIT\n'],
    ['a second commit', '*filter\nCOMMIT\n*filter\n-F INPUT\nCOMMIT\n'],
    ['no final newline', '*filter\nCOMMIT'],
    ['our jump lower down', '*filter\n-A INPUT -m comment --comment moshwall -j moshwall-input\nCOMMIT\n'],
  ];
  for (const [name, text] of refused) {
    it(`the guard refuses ${name}`, () => {
      assert.notEqual(restoreInputProblem(text, 'v4'), undefined);
    });
  }
});

describe('tableRules: which admin rules come after our jump', () => {
  const table = (lines: string[]) =>
    parseIptablesSave(
      ['*filter', ':INPUT DROP [0:0]', ':moshwall-input - [0:0]', ...lines, 'COMMIT', ''].join('\n'),
      'x',
    );
  const before = '-A INPUT -p udp -m udp --dport 60005 -j DROP';
  const jump = '-A INPUT -m comment --comment moshwall -j moshwall-input';
  const after = '-A INPUT -j REJECT --reject-with icmp-port-unreachable';

  it('rules above our jump can block our ports; rules below it cannot', () => {
    const rules = tableRules(table([before, jump, after]), 'v4').filter((rule) => !rule.ours);
    assert.deepEqual(
      rules.map((rule) => [rule.action, rule.afterOurs]),
      [
        ['deny', false],
        ['reject', true],
      ],
    );
  });

  it('before our jump exists (it will go in at the top) every INPUT rule comes after it', () => {
    const rules = tableRules(table([before, after]), 'v4');
    assert.deepEqual(
      rules.map((rule) => rule.afterOurs),
      [true, true],
    );
  });
});
