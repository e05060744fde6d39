import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseUserRules } from '../../../src/backends/ufw.ts';
import { FirewallError } from '../../../src/errors.ts';
import type { FirewallRule } from '../../../src/rules.ts';

const fixture = (path: string) =>
  readFileSync(new URL(`../../fixtures/ufw/${path}`, import.meta.url), 'utf8');

/** The fields a test states, in a fixed order, for readable diffs. */
function brief(rule: FirewallRule) {
  const ports =
    rule.ports === 'any'
      ? 'any'
      : rule.ports.map((r) => (r.first === r.last ? `${r.first}` : `${r.first}:${r.last}`));
  return {
    action: rule.action,
    direction: rule.direction,
    protocol: rule.protocol,
    ports: ports === 'any' ? ports : ports.join(','),
    source: rule.source,
    destination: rule.destination,
    comment: rule.comment,
    ours: rule.ours,
    ...(rule.interface === undefined ? {} : { interface: rule.interface }),
    ...(rule.application === undefined ? {} : { application: rule.application }),
    ...(rule.sourcePorts === undefined ? {} : { sourcePorts: rule.sourcePorts }),
  };
}

const any4 = { source: '0.0.0.0/0', destination: '0.0.0.0/0' };
const inUdp = { action: 'allow', direction: 'in', protocol: 'udp' } as const;

describe('parseUserRules on a real user.rules (admin rules + ours)', () => {
  const rules = parseUserRules(fixture('mixed/user.rules'), 'v4', '/etc/ufw/user.rules');

  it('lists every tuple in file order with exact fields', () => {
    assert.deepEqual(rules.map(brief), [
      { ...inUdp, ports: '60010', ...any4, comment: '', ours: false },
      { ...inUdp, ports: '60011', ...any4, comment: 'admin mosh', ours: false },
      { ...inUdp, ports: '60100:60200', ...any4, comment: '', ours: false },
      { ...inUdp, ports: '60020', ...any4, comment: '', ours: false, interface: 'eth0' },
      { ...inUdp, protocol: 'tcp', ports: '22', ...any4, comment: '', ours: false, application: 'OpenSSH' },
      { ...inUdp, action: 'deny', ports: '60030', ...any4, comment: '', ours: false },
      { ...inUdp, ports: '60080', source: '10.0.0.0/8', destination: '0.0.0.0/0', comment: '', ours: false },
      { ...inUdp, ports: '60013', ...any4, comment: 'moshwall', ours: true },
      { ...inUdp, ports: '60014', ...any4, comment: 'moshwall', ours: true },
      {
        ...inUdp,
        ports: '60016',
        source: '10.0.0.0/8',
        destination: '0.0.0.0/0',
        comment: 'moshwall',
        ours: true,
      },
    ]);
  });

  it('sets family from the file and keeps the tuple text as raw', () => {
    assert.ok(rules.every((rule) => rule.family === 'v4'));
    assert.equal(rules[7]?.raw, 'allow udp 60013 0.0.0.0/0 any 0.0.0.0/0 in comment=6d6f736877616c6c');
  });

  it('reads user6.rules as v6 with ::/0 for anywhere', () => {
    const v6 = parseUserRules(fixture('mixed/user6.rules'), 'v6', '/etc/ufw/user6.rules');
    assert.ok(v6.every((rule) => rule.family === 'v6' && rule.destination === '::/0'));
    assert.deepEqual(
      v6
        .filter((rule) => rule.ours)
        .map((rule) => `${rule.ports === 'any' ? 'any' : rule.ports[0]?.first} ${rule.source}`),
      ['60013 ::/0', '60015 ::/0'],
    );
  });

  it('finds no rule in a file without tuples', () => {
    assert.deepEqual(parseUserRules(fixture('ipv6-off/user6.rules'), 'v6', 'user6.rules'), []);
  });
});

describe('parseUserRules: every tuple form ufw 0.36.2 writes', () => {
  const v4 = parseUserRules(fixture('forms/user.rules'), 'v4', 'user.rules');
  const v6 = parseUserRules(fixture('forms/user6.rules'), 'v6', 'user6.rules');
  const byPort = (rules: FirewallRule[], port: number, action: string) => {
    const found = rules.filter(
      (rule) => rule.ports !== 'any' && rule.ports[0]?.first === port && rule.raw.startsWith(action),
    );
    assert.equal(found.length, 1, `exactly one ${action} rule for port ${port}`);
    const [rule] = found;
    assert.ok(rule);
    return brief(rule);
  };
  const table: [string, FirewallRule[], number, Partial<ReturnType<typeof brief>>, string?][] = [
    ['port list', v4, 60001, { ports: '60001,60005:60010', protocol: 'udp' }],
    ['proto any', v4, 60090, { protocol: 'any', ports: '60090' }],
    ['app rule (mosh profile)', v4, 60000, { application: 'mosh', ports: '60000:61000', protocol: 'udp' }],
    [
      'app rule with source',
      v4,
      22,
      { application: 'OpenSSH', source: '192.168.1.0/24', protocol: 'tcp' },
      'allow',
    ],
    ['reject', v4, 60040, { action: 'reject' }],
    ['allow log', v4, 60050, { action: 'allow', ours: false }],
    ['allow log-all', v4, 60051, { action: 'allow' }],
    ['deny log with comment', v4, 60052, { action: 'deny', comment: 'logged deny' }],
    ['out', v4, 60070, { direction: 'out' }],
    ['out on interface', v4, 60071, { direction: 'out', interface: 'eth1' }],
    ['route in/out interfaces', v4, 60060, { direction: 'other', interface: 'in_eth0!out_eth1' }],
    ['route without interface', v4, 60061, { direction: 'other', action: 'allow' }],
    ['interface with dash', v4, 60063, { direction: 'in', interface: 'br-lan' }],
    ['host source', v4, 60081, { source: '10.0.0.1/32' }],
    ['dotted netmask normalized by ufw', v4, 60083, { source: '10.0.0.0/8' }],
    ['host bits cleared by ufw', v4, 60084, { source: '10.1.0.0/16' }],
    ['non-contiguous netmask kept as written', v4, 60092, { source: '10.0.0.0/255.0.255.0' }],
    ['source port', v4, 60093, { sourcePorts: '123' }],
    ['destination address', v4, 60094, { destination: '192.168.1.10/32' }],
    ['comment in UTF-8 with quotes', v4, 60096, { comment: 'größe # mosh, "quoted"' }],
    ['v6 network', v6, 60085, { source: '2001:db8::/32', destination: '::/0' }],
    ['v6 host, written in capitals', v6, 60086, { source: '2001:db8::1/128' }],
    ['v6 host bits kept by ufw, masked here', v6, 60087, { source: '2001:db8::/64' }],
    ['v4-mapped v6 source', v6, 60088, { source: '::ffff:10.0.0.1/128' }],
    ['limit v6', v6, 22, { action: 'limit', protocol: 'tcp' }, 'limit'],
  ];
  for (const [name, rules, port, expected, action = ''] of table) {
    it(name, () => {
      const actual = byPort(rules, port, action);
      assert.deepEqual(
        Object.fromEntries(Object.keys(expected).map((key) => [key, actual[key as keyof typeof actual]])),
        expected,
      );
    });
  }

  it('flags ours only for our exact shape with our exact comment', () => {
    const ours = [...v4, ...v6]
      .filter((rule) => rule.ours)
      .map((rule) => `${rule.family} ${rule.ports === 'any' ? 'any' : rule.ports[0]?.first} ${rule.source}`);
    assert.deepEqual(ours, [
      'v4 60013 0.0.0.0/0',
      'v4 60034 10.0.0.1/32',
      'v6 60013 ::/0',
      'v6 60016 2001:db8::/32',
    ]);
  });

  const imposters: [string, number][] = [
    ['a range', 60017],
    ['a source port', 60019],
    ['an interface', 60021],
    ['a destination address', 60022],
    ['deny', 60023],
    ['allow log', 60024],
    ['comment "moshwall " (trailing space)', 60025],
    ['comment "MoshWall"', 60026],
    ['proto any', 60027],
    ['direction out', 60028],
    ['a routed rule', 60029],
    ['a port list', 60031],
    ['limit', 60033],
    ['a v6 source with host bits', 60035],
  ];
  for (const [name, port] of imposters) {
    it(`a rule tagged moshwall with ${name} is not ours`, () => {
      const rules = [...v4, ...v6].filter((rule) => rule.ports !== 'any' && rule.ports[0]?.first === port);
      assert.ok(rules.length > 0, `fixture has port ${port}`);
      for (const rule of rules) assert.equal(rule.ours, false, rule.raw);
    });
  }
});

describe('parseUserRules: hand-written tuples', () => {
  const one = (line: string, family: 'v4' | 'v6' = 'v4') => {
    const [rule, ...rest] = parseUserRules(`*filter\n${line}\n-A ufw-user-input -j ACCEPT\n`, family, 'f');
    assert.equal(rest.length, 0);
    assert.ok(rule);
    return brief(rule);
  };
  const table: [string, string, Partial<ReturnType<typeof brief>>][] = [
    [
      'old format without direction',
      '### tuple ### allow udp 60013 0.0.0.0/0 any 0.0.0.0/0',
      { direction: 'in', ours: false },
    ],
    [
      'old format with our comment is ours',
      '### tuple ### allow udp 60013 0.0.0.0/0 any 0.0.0.0/0 comment=6d6f736877616c6c',
      { direction: 'in', ours: true },
    ],
    [
      'all ports',
      '### tuple ### deny any any 0.0.0.0/0 any 10.0.0.0/8 in',
      { ports: 'any', protocol: 'any', action: 'deny' },
    ],
    [
      'source app only',
      '### tuple ### allow tcp any 0.0.0.0/0 22 0.0.0.0/0 - OpenSSH in',
      { application: 'OpenSSH', sourcePorts: '22' },
    ],
    [
      'app name with %20',
      '### tuple ### allow tcp 80,443 0.0.0.0/0 any 0.0.0.0/0 Nginx%20Full - in',
      { application: 'Nginx Full', ports: '80,443' },
    ],
    ['unknown protocol', '### tuple ### allow esp any 0.0.0.0/0 any 0.0.0.0/0 in', { protocol: 'other' }],
    [
      'unknown action word',
      '### tuple ### frobnicate udp 60013 0.0.0.0/0 any 0.0.0.0/0 in',
      { action: 'other', ours: false },
    ],
    ['extra spaces after the prefix', '### tuple ###   allow udp 60013 ::/0 any ::/0 in', { ports: '60013' }],
  ];
  for (const [name, line, expected] of table) {
    it(name, () => {
      const actual = one(line, line.includes('::') ? 'v6' : 'v4');
      assert.deepEqual(
        Object.fromEntries(Object.keys(expected).map((key) => [key, actual[key as keyof typeof actual]])),
        expected,
      );
    });
  }

  it('ignores lines that are not tuples', () => {
    assert.deepEqual(
      parseUserRules('# ### tuple ### allow udp 1 0.0.0.0/0 any 0.0.0.0/0 in\n### RULES ###\n', 'v4', 'f'),
      [],
    );
  });

  const errors: [string, string, 'v4' | 'v6'][] = [
    ['too few fields', '### tuple ### allow udp 60013 0.0.0.0/0 any', 'v4'],
    ['too many fields', '### tuple ### allow udp 60013 0.0.0.0/0 any 0.0.0.0/0 a b c d', 'v4'],
    ['port 0', '### tuple ### allow udp 0 0.0.0.0/0 any 0.0.0.0/0 in', 'v4'],
    ['port 65536', '### tuple ### allow udp 65536 0.0.0.0/0 any 0.0.0.0/0 in', 'v4'],
    ['reversed range', '### tuple ### allow udp 61000:60000 0.0.0.0/0 any 0.0.0.0/0 in', 'v4'],
    ['service name', '### tuple ### allow udp ssh 0.0.0.0/0 any 0.0.0.0/0 in', 'v4'],
    ['empty list item', '### tuple ### allow udp 60001,,60002 0.0.0.0/0 any 0.0.0.0/0 in', 'v4'],
    ['bad direction', '### tuple ### allow udp 60013 0.0.0.0/0 any 0.0.0.0/0 sideways', 'v4'],
    ['out!out interfaces', '### tuple ### allow udp 60013 0.0.0.0/0 any 0.0.0.0/0 out_a!out_b', 'v4'],
    ['bad log type', '### tuple ### allow_loud udp 60013 0.0.0.0/0 any 0.0.0.0/0 in', 'v4'],
    ['odd hex comment', '### tuple ### allow udp 60013 0.0.0.0/0 any 0.0.0.0/0 in comment=6d6', 'v4'],
    ['non-hex comment', '### tuple ### allow udp 60013 0.0.0.0/0 any 0.0.0.0/0 in comment=moshwall', 'v4'],
    ['bad address', '### tuple ### allow udp 60013 0.0.0.0/0 any 10.0.0.300 in', 'v4'],
    ['v6 address in user.rules', '### tuple ### allow udp 60013 0.0.0.0/0 any ::/0 in', 'v4'],
    ['v4 address in user6.rules', '### tuple ### allow udp 60013 ::/0 any 0.0.0.0/0 in', 'v6'],
  ];
  for (const [name, line, family] of errors) {
    it(`throws a FirewallError naming file and line for ${name}`, () => {
      const text = `*filter\n### RULES ###\n\n${line}\n`;
      assert.throws(
        () => parseUserRules(text, family, '/etc/ufw/user.rules'),
        (error: unknown) =>
          error instanceof FirewallError &&
          error.message.startsWith('Cannot read ufw rule at /etc/ufw/user.rules:4: ') &&
          error.context.file === '/etc/ufw/user.rules' &&
          error.context.line === 4 &&
          error.context.text === line,
      );
    });
  }
});
