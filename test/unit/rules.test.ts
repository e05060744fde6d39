import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FirewallError } from '../../src/errors.ts';
import { parseCidr } from '../../src/net.ts';
import {
  assertValidRuleSpecs,
  type FirewallRule,
  portProblem,
  type RuleSpec,
  ruleHasSpec,
  ruleSpecProblem,
  specKey,
  specOfRule,
} from '../../src/rules.ts';

describe('parseCidr', () => {
  const table: [
    string,
    { family: string; address: string; prefix: number; network: string; hostBitsSet: boolean },
  ][] = [
    ['0.0.0.0/0', { family: 'v4', address: '0.0.0.0', prefix: 0, network: '0.0.0.0/0', hostBitsSet: false }],
    [
      '10.0.0.1',
      { family: 'v4', address: '10.0.0.1', prefix: 32, network: '10.0.0.1/32', hostBitsSet: false },
    ],
    [
      '10.1.2.3/16',
      { family: 'v4', address: '10.1.2.3', prefix: 16, network: '10.1.0.0/16', hostBitsSet: true },
    ],
    [
      '192.168.1.128/25',
      { family: 'v4', address: '192.168.1.128', prefix: 25, network: '192.168.1.128/25', hostBitsSet: false },
    ],
    ['::/0', { family: 'v6', address: '::', prefix: 0, network: '::/0', hostBitsSet: false }],
    [
      '2001:DB8:0:0:0:0:0:1',
      { family: 'v6', address: '2001:db8::1', prefix: 128, network: '2001:db8::1/128', hostBitsSet: false },
    ],
    [
      '2001:db8::1/64',
      { family: 'v6', address: '2001:db8::1', prefix: 64, network: '2001:db8::/64', hostBitsSet: true },
    ],
    [
      '::ffff:10.0.0.1',
      {
        family: 'v6',
        address: '::ffff:10.0.0.1',
        prefix: 128,
        network: '::ffff:10.0.0.1/128',
        hostBitsSet: false,
      },
    ],
    [
      '2001:db8:0:1:0:0:0:1',
      {
        family: 'v6',
        address: '2001:db8:0:1::1',
        prefix: 128,
        network: '2001:db8:0:1::1/128',
        hostBitsSet: false,
      },
    ],
    [
      '2001:0:0:1:0:0:0:1',
      {
        family: 'v6',
        address: '2001:0:0:1::1',
        prefix: 128,
        network: '2001:0:0:1::1/128',
        hostBitsSet: false,
      },
    ],
    [
      '2001:db8:0:0:1:0:0:1',
      {
        family: 'v6',
        address: '2001:db8::1:0:0:1',
        prefix: 128,
        network: '2001:db8::1:0:0:1/128',
        hostBitsSet: false,
      },
    ],
    [
      '1:2:3:4:5:6:7::',
      {
        family: 'v6',
        address: '1:2:3:4:5:6:7:0',
        prefix: 128,
        network: '1:2:3:4:5:6:7:0/128',
        hostBitsSet: false,
      },
    ],
    ['fe80::/10', { family: 'v6', address: 'fe80::', prefix: 10, network: 'fe80::/10', hostBitsSet: false }],
  ];
  for (const [text, expected] of table) {
    it(`parses ${text}`, () => assert.deepEqual(parseCidr(text), expected));
  }
  const invalid = [
    '',
    'any',
    '10.0.0',
    '10.0.0.256',
    '010.0.0.1',
    '10.0.0.1/33',
    '10.0.0.1/',
    '10.0.0.1/08',
    '10.0.0.1/8/8',
    ' 10.0.0.1',
    '::/129',
    '1::2::3',
    ':1::',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '12345::',
    'fe80::1%eth0',
    '1.2.3.4::',
    '10.0.0.0/255.0.0.0',
    '--force',
  ];
  for (const text of invalid) {
    it(`refuses ${JSON.stringify(text)}`, () => assert.equal(parseCidr(text), undefined));
  }
});

describe('ruleSpecProblem', () => {
  const valid: RuleSpec[] = [
    { port: 1, family: 'v4', source: '0.0.0.0/0' },
    { port: 65535, family: 'v6', source: '::/0' },
    { port: 60001, family: 'v4', source: '192.0.2.7/32' },
    { port: 60001, family: 'v6', source: '2001:db8::/32' },
  ];
  for (const spec of valid) {
    it(`accepts ${specKey(spec)}`, () => {
      assert.equal(ruleSpecProblem(spec), undefined);
      assert.doesNotThrow(() => assertValidRuleSpecs([spec]));
    });
  }
  const invalid: [unknown, RegExp][] = [
    [
      { port: 0, family: 'v4', source: '0.0.0.0/0' },
      /port must be an integer from 1 to 65535, got `0` \(number\)/,
    ],
    [{ port: '60001', family: 'v4', source: '0.0.0.0/0' }, /got `60001` \(string\)/],
    [{ port: 60001, family: 'v5', source: '0.0.0.0/0' }, /family must be "v4" or "v6"/],
    [{ port: 60001, family: 'v4', source: '10.0.0.1' }, /source must be a CIDR/],
    [{ port: 60001, family: 'v4', source: '10.0.0.1/8' }, /has host bits set; use `10.0.0.0\/8`/],
    [{ port: 60001, family: 'v6', source: '2001:DB8::/32' }, /not in canonical form; use `2001:db8::\/32`/],
    [{ port: 60001, family: 'v6', source: '0.0.0.0/0' }, /is an v4 network but the rule is for v6/],
    [{ port: 60001, family: 'v4', source: undefined }, /source must be a CIDR/],
  ];
  for (const [spec, message] of invalid) {
    it(`refuses ${JSON.stringify(spec)}`, () => {
      // Specs arrive from other modules at runtime; check what a wrong one would look like.
      const candidate = spec as RuleSpec;
      assert.match(ruleSpecProblem(candidate) ?? '', message);
      assert.throws(
        () => assertValidRuleSpecs([valid[0] ?? candidate, candidate]),
        (error: unknown) => error instanceof FirewallError && /^Refusing rule spec: /.test(error.message),
      );
    });
  }

  it('accepts exactly 1..65535 as ports', () => {
    assert.deepEqual(
      [0, 1, 65535, 65536, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY].map(
        (port) => portProblem(port) === undefined,
      ),
      [false, true, true, false, false, false, false, false],
    );
  });
});

describe('specOfRule', () => {
  const base: FirewallRule = {
    family: 'v4',
    action: 'allow',
    direction: 'in',
    protocol: 'udp',
    ports: [{ first: 60001, last: 60001 }],
    source: '0.0.0.0/0',
    destination: '0.0.0.0/0',
    comment: '',
    ours: false,
    raw: 'r',
  };
  it('gives the spec of a rule with exactly our shape, whatever its action or comment', () => {
    assert.deepEqual(specOfRule({ ...base, action: 'deny', comment: 'admin' }), {
      port: 60001,
      family: 'v4',
      source: '0.0.0.0/0',
    });
    assert.ok(ruleHasSpec(base, { port: 60001, family: 'v4', source: '0.0.0.0/0' }));
    assert.ok(!ruleHasSpec(base, { port: 60001, family: 'v6', source: '::/0' }));
  });
  const others: [string, FirewallRule][] = [
    ['a range', { ...base, ports: [{ first: 60001, last: 60002 }] }],
    [
      'a list',
      {
        ...base,
        ports: [
          { first: 60001, last: 60001 },
          { first: 60001, last: 60001 },
        ],
      },
    ],
    ['any port', { ...base, ports: 'any' }],
    ['tcp', { ...base, protocol: 'tcp' }],
    ['proto any', { ...base, protocol: 'any' }],
    ['out', { ...base, direction: 'out' }],
    ['routed', { ...base, direction: 'other' }],
    ['an interface', { ...base, interface: 'eth0' }],
    ['an application', { ...base, application: 'mosh' }],
    ['a source port', { ...base, sourcePorts: '123' }],
    ['a destination', { ...base, destination: '192.0.2.1/32' }],
    ['a non-canonical source', { ...base, source: '10.0.0.0/255.0.255.0' }],
    ['a v6 source on a v4 rule', { ...base, source: '::/0' }],
  ];
  for (const [name, rule] of others) {
    it(`has no spec for ${name}`, () => assert.equal(specOfRule(rule), undefined));
  }
});
