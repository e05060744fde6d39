import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  cidrContains,
  formatIPv6,
  ipFamily,
  isLoopback,
  isV4Mapped,
  parseIPv6,
  parseNetwork,
} from '../../src/net.ts';

describe('parseNetwork', () => {
  const good: [string, string][] = [
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['192.0.2.0/24', '192.0.2.0/24'],
    ['192.0.2.7', '192.0.2.7/32'],
    ['::/0', '::/0'],
    ['2001:DB8:0:0::/64', '2001:db8::/64'],
    ['2001:db8::1', '2001:db8::1/128'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1/128'],
  ];
  for (const [input, canonical] of good) {
    it(`accepts ${input} as ${canonical}`, () => {
      const cidr = parseNetwork(input);
      assert.equal(typeof cidr === 'object' && cidr.network, canonical);
    });
  }
  const bad: [string, RegExp][] = [
    ['192.0.2.1/24', /host bits set; did you mean 192\.0\.2\.0\/24/],
    ['256.0.0.0/8', /not an IPv4 or IPv6/],
    ['10.0.0.0/33', /not an IPv4 or IPv6/],
    ['10.0.0.0/8/8', /not an IPv4 or IPv6/],
    ['1:2:3:4:5:6:7:8:9', /not an IPv4 or IPv6/],
    ['1::2::3', /not an IPv4 or IPv6/],
    ['10.0.0.0/-1', /not an IPv4 or IPv6/],
    ['; rm -rf /', /not an IPv4 or IPv6/],
    ['01.2.3.4', /not an IPv4 or IPv6/],
  ];
  for (const [input, message] of bad) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      const cidr = parseNetwork(input);
      assert.equal(typeof cidr, 'string');
      assert.match(String(cidr), message);
    });
  }
});

describe('addresses', () => {
  it('formats IPv6 with the longest zero run compressed (RFC 5952)', () => {
    assert.equal(formatIPv6(parseIPv6('2001:db8:0:0:1:0:0:1') ?? []), '2001:db8::1:0:0:1');
    assert.equal(formatIPv6(parseIPv6('0:0:0:0:0:0:0:1') ?? []), '::1');
    assert.equal(formatIPv6(new Array<number>(16).fill(0)), '::');
  });
  it('tells families apart and spots v4-mapped addresses', () => {
    assert.equal(ipFamily('192.0.2.1'), 'v4');
    assert.equal(ipFamily('fe80::1'), 'v6');
    assert.equal(ipFamily('example.org'), undefined);
    assert.equal(isV4Mapped('::ffff:192.0.2.1'), true);
    assert.equal(isV4Mapped('::1'), false);
  });
  it('decides containment per family', () => {
    assert.equal(cidrContains('0.0.0.0/0', '192.0.2.0/24'), true);
    assert.equal(cidrContains('192.0.2.0/25', '192.0.2.0/24'), false);
    assert.equal(cidrContains('192.0.2.0/24', '192.0.2.128/25'), true);
    assert.equal(cidrContains('192.0.2.0/24', '198.51.100.0/24'), false);
    assert.equal(cidrContains('::/0', '192.0.2.0/24'), false);
    assert.equal(cidrContains('::/0', '2001:db8::/32'), true);
    assert.equal(cidrContains('not a network', '2001:db8::/32'), false);
  });
});

describe('isLoopback', () => {
  it('is true for 127/8, ::1 and ::ffff:127.x only', () => {
    for (const address of ['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.1'])
      assert.equal(isLoopback(address), true, address);
    for (const address of ['0.0.0.0', '192.0.2.1', '::', '::2', '2001:db8::1', '::ffff:192.0.2.1', 'junk'])
      assert.equal(isLoopback(address), false, address);
  });
});
